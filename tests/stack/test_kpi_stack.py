"""KPI reports and the queue_log export from a handful of real calls: SIPp callers through the
real Asterisk and engine, agents' SIPp phones answering, not answering, and hanging up."""

from __future__ import annotations

import asyncio
import math

from tests.stack.conftest import new_caller


def by_call(lines: list[str]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for line in lines:
        fields = line.split("|")
        out.setdefault(fields[1], []).append(fields)
    return out


def test_answered_ring_no_answer_abandoned_and_agent_hangup_give_the_report_and_queue_log(
        engine_with_routing, phones, stack_dir):
    engine = engine_with_routing(None, data_dir=stack_dir / "kpi-data")  # a database of its own
    phones("1001", mode="never_answer")
    phones("1002", mode="answer", ring_delay_ms=300)
    phones("1003", mode="answer_then_hangup", ring_delay_ms=300, talk_ms=2000)

    # A: rings 1001 (ring_timeout 4 s, no answer: 1001 is paused), then 1002 answers; the caller hangs up
    engine.login("1001", "support")
    engine.login("1002", "support")
    result = asyncio.run(new_caller("2", "13900000061", hold_ms=9000).run(timeout=45))
    assert result.ok, result.describe()
    a = engine.call_id_for("13900000061")
    engine.wait_for_event("agent_state", agent_id="1002", timeout=20,
                          after=engine.wait_for_event("ended", call_id=a)["id"])

    # B: nobody available (1001 paused, 1002 logged out): the caller waits ~8 s and hangs up
    engine.api("POST", "/api/agents/1002/logout", {})
    result = asyncio.run(new_caller("2", "13900000062", hold_ms=12000).run(timeout=45))
    assert result.ok, result.describe()
    b = engine.call_id_for("13900000062")
    engine.wait_for_event("abandoned", call_id=b)

    # C: 1003 answers and hangs up first (COMPLETEAGENT)
    engine.login("1003", "support")
    result = asyncio.run(new_caller("2", "13900000063", hold_ms=None).run(timeout=45))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    c = engine.call_id_for("13900000063")
    engine.wait_for_event("ended", call_id=c)

    events = engine.events()
    answered = {e["call_id"]: e for e in events if e["kind"] == "answered"}
    ended = {e["call_id"]: e for e in events if e["kind"] == "ended"}
    abandoned = next(e for e in events if e["kind"] == "abandoned")
    assert set(answered) == {a, c} and abandoned["call_id"] == b
    assert (answered[a]["agent_id"], answered[c]["agent_id"]) == ("1002", "1003")
    assert (ended[a]["data"]["by"], ended[c]["data"]["by"]) == ("caller", "agent")
    assert abandoned["data"]["wait"] >= 5.0, "long enough not to be a short abandon"

    # ---- the report, through the JSON API (the same code as `callcenter report kpis`)
    report = engine.api("GET", "/api/reports/kpis?sl=80/20", timeout=10)
    (interval,) = report["intervals"]
    total = interval["total"]
    assert (total["queued"], total["offered"], total["answered"], total["abandoned"], total["short_abandoned"]) == (
        3, 3, 2, 1, 0)
    waits = [answered[a]["data"]["wait"], answered[c]["data"]["wait"]]
    assert math.isclose(total["asa"], sum(waits) / 2)
    assert total["longest_wait"] == max(waits + [abandoned["data"]["wait"]])
    within = sum(w <= 20 for w in waits)
    assert math.isclose(total["service_level"]["of_offered"], within / 3)
    assert math.isclose(total["service_level"]["of_answered"], within / 2)
    assert math.isclose(total["avg_talk"], (ended[a]["data"]["talk"] + ended[c]["data"]["talk"]) / 2)
    agents = {row["agent_id"]: row for row in interval["agents"]}
    assert agents["1001"]["offers_not_taken"] == 1 and agents["1001"]["answered"] == 0
    assert agents["1001"]["paused_time"] > 0, "paused by its ring-no-answer"
    assert (agents["1002"]["answered"], agents["1003"]["answered"]) == (1, 1)
    assert agents["1002"]["handling_time"] >= ended[a]["data"]["talk"]

    # ---- bad report parameters are refused with what was expected
    try:
        engine.api("GET", "/api/reports/kpis?interval=7m")
    except Exception as exc:  # urllib's HTTPError
        assert exc.code == 400 and "interval" in exc.read().decode()
    else:
        raise AssertionError("a 7-minute interval was accepted")

    # ---- the queue_log export
    lines = by_call(engine.api("GET", "/api/reports/queue-log", timeout=10)["lines"])
    assert [f[4] for f in lines[a]] == ["ENTERQUEUE", "RINGNOANSWER", "CONNECT", "COMPLETECALLER"]
    assert [f[4] for f in lines[b]] == ["ENTERQUEUE", "ABANDON"]
    assert [f[4] for f in lines[c]] == ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    assert lines[a][0][2:4] == ["support", "NONE"] and lines[a][0][6] == "13900000061"
    assert lines[a][1][3] == "PJSIP/agent1001" and 3500 <= int(lines[a][1][5]) <= 6000, "rang ~4 s (ms)"
    assert lines[a][2][3] == "PJSIP/agent1002" and lines[a][2][6] == f"{a}-o2"
    position, origposition, waittime = lines[b][1][5:8]
    assert (position, origposition) == ("1", "1")
    assert abs(int(waittime) - (int(lines[b][1][0]) - int(lines[b][0][0]))) <= 1
    members = [(f[3], f[4]) for f in lines["NONE"]]
    assert ("PJSIP/agent1001", "PAUSE") in members and ("PJSIP/agent1002", "REMOVEMEMBER") in members

    # ---- live figures, kept event by event
    live = engine.api("GET", "/api/realtime")
    (support,) = [q for q in live["queues"] if q["queue"] == "support"]
    assert support["waiting"] == 0
    assert (support["today"]["answered"], support["today"]["abandoned"]) == (2, 1)
    assert "1001" in live["agents_by_state"]["paused"]
