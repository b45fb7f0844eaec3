"""The agent desktop in a real browser: Debian's headless Chromium driven by Playwright, against the
running engine, with SIPp callers and a SIPp agent phone on the real Asterisk. Screenshots of the
desktop are saved as test artifacts (tests/artifacts/)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from callcenter.crm.schema import interactions_table
from tests.stack.conftest import new_caller
from tests.stack.test_desktop_stack import LI_WEI, desk_engine  # noqa: F401 (fixture)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Chromium as root in a container, with nothing reaching out to the (closed) network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCRIPT_NAME = "<script>window.popped=1</script><img src=x onerror=popped=2>"


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}: scripts/install installs Debian's chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1100}, locale="en-GB")
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def log_in(page, engine, agent_id: str, lang: str = "en") -> None:
    page.goto(f"http://127.0.0.1:{engine.settings.web_port}/")
    page.click(f"[data-lang={lang}]")
    page.fill("#login-agent", agent_id)
    page.fill("#login-password", f"pw-{agent_id}-secret")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#desk-view:not([hidden])")


def test_an_agent_works_a_call_from_the_browser(desk_engine, phones, browser_page):  # noqa: F811
    engine, page = desk_engine, browser_page
    phone = phones("1001", mode="answer", ring_delay_ms=3000)
    log_in(page, engine, "1001")
    page.click("[data-testid=ready]")
    page.wait_for_function("document.querySelector('[data-testid=state]').textContent.startsWith('Ready')")

    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(new_caller("2", LI_WEI, hold_ms=9000).run_sync, 60)
        page.wait_for_selector("[data-testid=customer-name]:has-text('Li Wei')")
        popped_at = time.time()
        assert page.text_content("[data-testid=stage]").startswith("Ringing")
        assert "matches this customer" in page.text_content("[data-testid=match]")
        assert "not verified" in page.text_content("[data-testid=match]")
        assert page.text_content("[data-testid=customer-tier]") == "VIP"
        assert "welcome" in page.text_content("[data-testid=ivr-steps]")
        page.screenshot(path=str(ARTIFACTS / "desktop-ringing.png"), full_page=True)
        page.wait_for_selector("[data-testid=stage]:has-text('On call')")
        result = caller.result()
    assert result.ok, result.describe()
    assert phone.answered_calls() == 1
    call_id = engine.call_id_for(LI_WEI)
    assert popped_at < engine.wait_for_event("answered", call_id=call_id)["ts"], "popped before the answer"

    page.wait_for_selector("[data-testid=stage]:has-text('Wrap-up'), [data-testid=stage]:has-text('Last call')")
    page.select_option("[data-testid=disposition]", "resolved")
    page.check("[data-testid=resolved-yes]")
    page.fill("[data-testid=notes]", "reset the router; customer happy")
    page.click("[data-testid=save-outcome]")
    page.wait_for_selector("[data-testid=outcome-status]:has-text('Saved')")
    page.wait_for_function("Number(document.querySelector('[data-testid=fig-answered]').textContent) >= 1")
    page.screenshot(path=str(ARTIFACTS / "desktop-wrapup.png"), full_page=True)

    with engine.db.connect() as conn:
        (row,) = conn.execute(select(interactions_table).where(interactions_table.c.call_id == call_id)).all()
    assert (row.agent_id, row.disposition, row.resolved, row.notes) == (
        "1001", "resolved", True, "reset the router; customer happy")

    page.wait_for_selector("[data-testid=stage]:has-text('Last call')")  # wrap-up over
    page.wait_for_function("document.getElementById('fig-aht').textContent.endsWith('s')")  # talk + ACW known
    page.click("[data-lang=zh]")  # the same desk in Chinese
    assert page.text_content("h1") == "坐席工作台"
    assert page.text_content("[data-testid=stage]") == "上一通"
    page.screenshot(path=str(ARTIFACTS / "desktop-zh.png"), full_page=True)


def test_a_caller_id_name_holding_markup_shows_as_text(desk_engine, phones, browser_page):  # noqa: F811
    engine, page = desk_engine, browser_page
    phones("1002", mode="answer", ring_delay_ms=2500)
    log_in(page, engine, "1002")
    page.click("[data-testid=ready]")
    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(new_caller("2", "13900000061", hold_ms=5000, caller_name=SCRIPT_NAME).run_sync, 60)
        page.wait_for_selector("[data-testid=caller-name]:not(:empty)")
        shown = page.text_content("[data-testid=caller-name]")
        caller.result()
    assert "<script>" in shown and "onerror" in shown, f"the name is shown as typed: {shown!r}"
    assert page.evaluate("window.popped") is None, "nothing the caller sent ran in the page"
    assert page.query_selector("[data-testid=pop] script, [data-testid=pop] img") is None
