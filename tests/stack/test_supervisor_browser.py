"""The supervisor's wallboard and the QA page in a real browser (Debian's headless Chromium, driven
by Playwright) against the running engine, with SIPp callers and agent phones on the real Asterisk.
Screenshots go to tests/artifacts/ (and are the README's)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.stack.conftest import new_caller
from tests.stack.test_desktop_browser import ARTIFACTS, browser_page  # noqa: F401 (fixture)
from tests.stack.test_supervisor_stack import floor, password_of, staff, wait_until  # noqa: F401 (fixture)


def staff_login(page, engine, path: str, username: str) -> None:
    page.goto(f"http://127.0.0.1:{engine.settings.web_port}{path}")
    page.fill("[data-testid=login-username]", username)
    page.fill("[data-testid=login-password]", password_of(username))
    page.click("[data-testid=login-submit]")


def tile(queue: str, testid: str) -> str:
    return f"[data-testid=queue-tile][data-queue={queue}] [data-testid={testid}]"


def test_the_wallboard_follows_calls_live_without_polling(floor, phones, browser_page, asterisk):  # noqa: F811
    engine, page = floor, browser_page
    asterisk.cli("dialplan set global CC_MAX_HOLD 120")  # the second caller waits for the first call's end
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    staff_login(page, engine, "/wallboard/", "supervisor")
    page.wait_for_selector("[data-testid=live]:has-text('live')")
    page.wait_for_selector(tile("support", "waiting") + ":text-is('0')")
    # today's figures include the calls of earlier tests (one database for the session)
    answered = int(page.text_content(tile("support", "answered")))
    engine.login("1002", "sales")  # another agent, paused: the board shows states
    engine.api("POST", "/api/agents/1002/pause", {"reason": "lunch"})
    page.wait_for_selector("[data-testid=agent-row][data-agent='1002'] [data-testid=agent-state]:has-text('paused (lunch')")

    with ThreadPoolExecutor(2) as pool:
        # the caller who hangs up first (8 s) queues first, so it is answered first
        callers = [pool.submit(new_caller("2", "13911110051", hold_ms=8000).run_sync, 60)]
        page.wait_for_selector(tile("support", "waiting") + ":text-is('1')", timeout=20_000)
        callers.append(pool.submit(new_caller("2", "13911110052", hold_ms=16000).run_sync, 60))
        page.wait_for_selector(tile("support", "waiting") + ":text-is('2')", timeout=20_000)
        time.sleep(1.5)  # the longest wait ticks up on the board, pushed every second
        assert page.text_content(tile("support", "longest-wait")) not in ("–", "0:00")
        page.screenshot(path=str(ARTIFACTS / "wallboard.png"), full_page=True)

        phones("1001", mode="answer", ring_delay_ms=300, talk_ms=2000)
        engine.login("1001", "support")
        row = "[data-testid=agent-row][data-agent='1001']"
        page.wait_for_selector(row + " [data-testid=agent-state]:text-is('on_call')", timeout=20_000)
        page.wait_for_selector(tile("support", "answered") + f":text-is('{answered + 1}')", timeout=20_000)
        page.wait_for_selector(tile("support", "answered") + f":text-is('{answered + 2}')", timeout=30_000)
        page.wait_for_selector(tile("support", "waiting") + ":text-is('0')")
        page.wait_for_selector(row + " [data-testid=calls-today]:text-is('2')")
        for caller in callers:
            assert caller.result().ok
    asterisk.cli(f"dialplan set global CC_MAX_HOLD {engine.settings.max_hold_seconds}")
    # today's service level against support's own target and threshold (routing.yaml: 80 % in 30 s)
    assert page.text_content(tile("support", "sl")).endswith("% / 80% in 30s")

    # live by push: one event stream, and not a single poll of the JSON API after the login
    streams = [url for url in requests if url.endswith("/live/wallboard")]
    polls = [url for url in requests if "/api/" in url and not url.endswith(("/api/staff/me", "/api/staff/login"))]
    assert len(streams) == 1 and polls == [], (streams, polls)


def test_a_qa_analyst_finds_plays_and_scores_a_recorded_call(floor, phones, browser_page):  # noqa: F811
    engine, page = floor, browser_page
    phones("1001", mode="answer", ring_delay_ms=300, talk_ms=3000)
    engine.login("1001", "support")
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop owns this thread
        assert pool.submit(new_caller("2", "13911110061", hold_ms=8000).run_sync, 60).result().ok
    call_id = engine.call_id_for("13911110061")
    supervisor = staff(engine, "supervisor")
    wait_until(lambda: supervisor.call("GET", f"/api/recordings?call={call_id}")["recordings"], 10, "indexed")

    staff_login(page, engine, "/qa/", "quinn")
    page.fill("[data-testid=search-customer]", "13911110061")
    page.click("[data-testid=search-recordings]")
    page.click("[data-testid=recording-row]")
    assert page.text_content("[data-testid=selected-call]") == call_id
    form = supervisor.call("GET", "/api/qa/forms/default")
    for section in form["sections"]:
        for question in section["questions"]:
            testid = f"[data-testid=question-{question['id']}]"
            if question["kind"] == "yes_no":
                page.check(f"{testid}[value=yes]")
            else:
                page.select_option(testid, str(question["max"] - 1))
    page.fill("[data-testid=comment]", "good call; offer the survey next time")
    page.click("[data-testid=submit-evaluation]")
    page.wait_for_selector("[data-testid=score-total]:not(:empty)")
    shown = float(page.text_content("[data-testid=score-total]"))
    page.screenshot(path=str(ARTIFACTS / "qa.png"), full_page=True)

    (stored,) = supervisor.call("GET", f"/api/qa/evaluations?call={call_id}")["evaluations"]
    assert stored["evaluator"] == "quinn" and stored["agent_id"] == "1001" and stored["total"] == shown
    assert 80 < shown < 100, "every yes, every scale one below its top"
    # the browser played the recording: the QA analyst's playback is in the audit log
    (recording,) = supervisor.call("GET", f"/api/recordings?call={call_id}")["recordings"]
    played = supervisor.call("GET", f"/api/audit?action=recording_played&target=recording:{recording['id']}")
    assert [e["actor"] for e in played["entries"]] == ["qa:quinn"]
    evaluated = supervisor.call("GET", f"/api/audit?action=qa_evaluated&target=call:{call_id}")["entries"]
    assert [e["actor"] for e in evaluated] == ["qa:quinn"]

    page.click("[data-testid=tab-scores]")
    page.click("[data-testid=show-scores]")
    page.wait_for_selector("[data-testid=scores-agent-row]:has-text('1001')")
    assert "north" in page.text_content("[data-testid=scores-team-row]")
