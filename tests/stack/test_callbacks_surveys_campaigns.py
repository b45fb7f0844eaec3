"""Callbacks, post-call surveys and outbound campaigns on the real stack: real Asterisk, SIPp
callers pressing keys, SIPp agent phones, and one SIPp UAS behind the trunk standing for the
customers' phones (numbers decide whether it answers, is busy or rings out)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from callcenter.config import PROJECT_DIR
from callcenter.events.log import read_events
from callcenter.sipp import SippPhone
from callcenter.sipp.scenarios import customers_scenario
from tests.stack.conftest import new_caller

CUSTOMER_PORT = 5070  # the trunk's outbound contact (settings.trunk_contact)
CALLBACK_NUMBER = "+12125550147"


def flows_with(directory: Path) -> Path:
    """The shipped flows, with sales offering callbacks at once and support surveying its callers."""
    directory.mkdir()
    for flow in (PROJECT_DIR / "ivr_flows").glob("*"):
        shutil.copy(flow, directory / flow.name)
    main = directory / "main.yaml"
    text = main.read_text()
    text, n = re.subn(r"  sales:   \{type: queue, queue: sales, priority: 0\}\n  support: \{type: queue, queue: support\}",
                      "  sales:\n    type: queue\n    queue: sales\n    callback: {when_wait_over: 0, first_after: 1, "
                      "every: 60, prompts: [beep], wait: 15}\n  support: {type: queue, queue: support, survey: csat}",
                      text)
    assert n == 1, "main.yaml changed: update this test's edit"
    main.write_text(text)
    (directory / "csat.yaml").write_text(
        "start: rate\nnodes:\n  rate: {type: survey, question: csat, prompts: [hello], timeout: 5, retries: 2}\n")
    return directory


def dialled(phone: SippPhone) -> list[tuple[str, float]]:
    """(number, when) of every new INVITE the UAS received, oldest first."""
    found = []
    for m in phone.messages():
        if m.direction == "received" and m.method == "INVITE" and m.to_tag is None:
            number = re.match(r"INVITE sips?:\+?([0-9]+)@", m.start_line)
            if number and (number.group(1), m.call_id) not in {(n, c) for n, c, _ in found}:
                found.append((number.group(1), m.call_id, m.at.timestamp()))
    return [(n, at) for n, _, at in found]


def test_a_caller_who_chose_a_callback_keeps_their_place_and_the_agent_is_rung_before_them(
        engine_with_routing, stack_dir, asterisk, phones):
    # the hold loop's maximum hold is Asterisk's (12 s in tests): this test's callers wait longer
    asterisk.cli("dialplan set global CC_MAX_HOLD 120")
    customer = SippPhone("customer", sip_port=CUSTOMER_PORT, media_port=7600, mode="answer_then_hangup",
                         ring_delay_ms=300, talk_ms=1500, workdir=stack_dir / "customer-cb")
    customer.start()
    try:
        engine = engine_with_routing(flows_dir=flows_with(stack_dir / "flows-cb"))
        agent = phones("1001", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=4000)

        async def scenario():
            # sales (1), then the callback key (1) during the offer, then 1 again to confirm the
            # caller ID said back to them (keys 14.5 s apart: see the prompts' lengths)
            chooser = asyncio.create_task(new_caller("111", CALLBACK_NUMBER, key_gap_ms=14_500,
                                                     hold_ms=None).run(timeout=90))
            chooser_id = await asyncio.to_thread(engine.call_id_for, CALLBACK_NUMBER)
            await asyncio.to_thread(engine.wait_for_event, "queued", call_id=chooser_id)
            later = asyncio.create_task(new_caller("1", "13900000077", hold_ms=None).run(timeout=120))
            later_id = await asyncio.to_thread(engine.call_id_for, "13900000077")
            await asyncio.to_thread(engine.wait_for_event, "queued", call_id=later_id)
            accepted = await asyncio.to_thread(engine.wait_for_event, "callback_accepted", call_id=chooser_id,
                                               timeout=45)
            chose = await chooser
            engine.login("1001", "sales")
            completed = await asyncio.to_thread(engine.wait_for_event, "callback_completed", call_id=chooser_id,
                                                timeout=30)
            answered_later = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=later_id, timeout=30)
            return chose, await later, chooser_id, later_id, accepted, completed, answered_later

        chose, waited, chooser_id, later_id, accepted, completed, answered_later = asyncio.run(scenario())
    finally:
        customer.stop()
        asterisk.cli("dialplan set global CC_MAX_HOLD 12")

    assert chose.ok and chose.received_bye_from_far_end, chose.describe()
    assert waited.ok and waited.received_bye_from_far_end, waited.describe()
    events = engine.events(chooser_id)
    kinds = [e["kind"] for e in events]
    assert "callback_offered" in kinds and "abandoned" not in kinds, kinds
    assert accepted["data"]["source"] == "hold"
    # the callback went first although its caller had hung up: its place was kept
    offers = [e for e in engine.events() if e["kind"] == "offered" and e["call_id"] in (chooser_id, later_id)]
    assert [e["call_id"] for e in offers][:2] == [chooser_id, later_id], offers
    answered = next(e for e in events if e["kind"] == "answered")
    assert answered["agent_id"] == "1001" and answered["data"]["wait"] >= answered["ts"] - events[0]["ts"] - 5
    assert answered["ts"] < answered_later["ts"]
    # agent first: the agent's phone rang and answered before the customer's phone was called
    agent_call = agent.calls()[0]
    ((number, invited_at),) = dialled(customer)
    assert number == CALLBACK_NUMBER.lstrip("+")
    assert agent_call.answered_at is not None and agent_call.answered_at.timestamp() <= invited_at
    (row,) = [c for c in engine.api("GET", "/api/callbacks") if c["call_id"] == chooser_id]
    assert row["status"] == "completed" and row["attempts"] == 1 and row["agent_id"] == "1001"
    assert completed["data"]["callback_id"] == row["id"]


def test_when_the_agent_hangs_up_first_the_caller_rates_the_call_in_the_survey(
        engine_with_routing, stack_dir, phones):
    engine = engine_with_routing(flows_dir=flows_with(stack_dir / "flows-survey"))
    phones("1002", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1500)
    engine.login("1002", "support")
    result = asyncio.run(new_caller("24", "13900000078", key_gap_ms=4000, hold_ms=None).run(timeout=40))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    call_id = engine.call_id_for("13900000078")
    survey = engine.wait_for_event("survey_answered", call_id=call_id)
    assert survey["data"]["question"] == "csat" and survey["data"]["score"] == 4
    assert survey["agent_id"] == "1002" and survey["queue"] == "support"
    ended = engine.wait_for_event("ended", call_id=call_id)
    assert ended["data"]["by"] == "agent" and ended["ts"] <= survey["ts"]
    assert [e["kind"] for e in engine.events(call_id)].count("call_arrived") == 1
    (interval,) = engine.api("GET", "/api/reports/kpis", timeout=10)["intervals"]
    queues = {row["queue"]: row for row in interval["queues"]}
    assert queues["support"]["csat"]["responses"] == 1 and queues["support"]["csat"]["mean_score"] == 4, queues
    agents = {row["agent_id"]: row for row in interval["agents"]}
    assert agents["1002"]["csat"]["responses"] == 1, agents


ANSWERING = [f"12125550{n:03d}" for n in range(101, 113)]  # 12 customers who answer
BUSY = [f"12125550{n:03d}" for n in range(211, 215)]       # 4 always busy
SILENT = [f"12125550{n:03d}" for n in range(311, 313)]     # 2 who never answer
BLOCKED = [f"12125550{n:03d}" for n in range(411, 413)]    # 2 on the do-not-call list
CAMPAIGN = """
name: renewals
queue: support
caller_id: "+12125550100"
time_zone: Europe/Paris
window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}
pacing: {mode: progressive, lines_per_agent: 1, max_lines: 2}
ring_seconds: 5
retry:
  busy: {attempts: 1, after_seconds: 30}
  no_answer: {attempts: 0, after_seconds: 60}
"""


def cli(engine, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callcenter", "--config", str(engine.config_path), *args],
                          capture_output=True, text=True, timeout=60)


def test_a_progressive_campaign_respects_pacing_and_do_not_call_and_survives_an_engine_restart(
        engine_with_routing, stack_dir, phones):
    customers = SippPhone("customers", sip_port=CUSTOMER_PORT, media_port=7600, workdir=stack_dir / "customers",
                          scenario=customers_scenario("12125550" + "2", "12125550" + "3", ring_delay_ms=300))
    customers.start()
    try:
        engine = engine_with_routing(wrapup_seconds=0)
        for agent_id in ("1003", "1004"):
            phones(agent_id, mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1000)
            engine.login(agent_id, "support")
        spec = stack_dir / "renewals.yaml"
        spec.write_text(CAMPAIGN)
        contacts = stack_dir / "renewals.csv"
        contacts.write_text("number,name\n" + "".join(f"+{n},Customer {n[-3:]}\n"
                                                      for n in ANSWERING + BUSY + SILENT + BLOCKED))
        for args in (("campaign", "create", str(spec)), ("dnc", "add", f"+{BLOCKED[0]}")):
            done = cli(engine, *args)
            assert done.returncode == 0, done.stderr
        imported = cli(engine, "campaign", "import", "renewals", str(contacts))
        assert imported.returncode == 0, imported.stdout + imported.stderr
        # on the list after the import: the dialer's own check at dial time must still stop it
        assert cli(engine, "dnc", "add", f"+{BLOCKED[1]}").returncode == 0
        assert cli(engine, "campaign", "start", "renewals").returncode == 0

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and sum(e["kind"] == "campaign_outcome" for e in engine.events()) < 7:
            time.sleep(0.5)
        assert engine.stop() == 0  # midway
        engine.start()
        for agent_id in ("1003", "1004"):  # agents' sessions are the engine's: they log in again
            engine.login(agent_id, "support")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = engine.api("GET", "/api/campaigns/renewals")
            if status["state"] == "completed":
                break
            time.sleep(1)
        time.sleep(2)  # the last calls' hang-ups
    finally:
        customers.stop()

    assert status["state"] == "completed", (status, engine.log_tail())
    progress = status["progress"]
    assert progress["by_status"]["done"] == len(ANSWERING)
    assert progress["by_status"]["dnc"] == len(BLOCKED)
    assert progress["by_status"]["failed"] == len(BUSY) + len(SILENT)
    invites: dict[str, int] = {}
    for number, _ in dialled(customers):
        invites[number] = invites.get(number, 0) + 1
    assert all(invites.get(n) == 1 for n in ANSWERING), invites  # no customer called twice
    assert all(invites.get(n) == 2 for n in BUSY), invites  # busy: one retry, 30 s later
    assert all(invites.get(n) == 1 for n in SILENT), invites
    assert not any(n in invites for n in BLOCKED), invites  # do-not-call always wins
    events = read_events(engine.db, limit=100_000)
    # pacing: never more lines up than the two agents (a line lasts from dial to its end). A call
    # still in conversation when the engine stopped is not followed by the next engine (resyncing
    # bridged calls is the reliability work's): its line is counted up to the stop.
    spans = {}
    for e in events:
        if e["kind"] == "engine_stopped":
            for span in spans.values():
                span[1] = span[1] or e["ts"]
        elif e["kind"] == "campaign_dialed":
            spans[e["call_id"]] = [e["ts"], None]
        elif e["call_id"] in spans and spans[e["call_id"]][1] is None and (
                e["kind"] in ("ended", "abandoned")
                or (e["kind"] == "campaign_outcome" and e["data"]["outcome"] != "connected")):
            spans[e["call_id"]][1] = e["ts"]
    assert len(spans) == len(ANSWERING) + 2 * len(BUSY) + len(SILENT)
    assert all(end is not None for _, end in spans.values()), spans
    edges = sorted([(s, 1) for s, _ in spans.values()] + [(end, -1) for _, end in spans.values()])
    up = peak = 0
    for _, step in edges:
        up += step
        peak = max(peak, up)
    assert peak <= 2, peak
    answered = [e for e in events if e["kind"] == "answered" and e["call_id"] in spans]
    assert len(answered) == len(ANSWERING) and {e["agent_id"] for e in answered} == {"1003", "1004"}
