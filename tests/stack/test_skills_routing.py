"""Skills-based routing on the real stack: proficiency decides who gets a call, and a widening
step comes due on its own timer while the caller waits in Asterisk's hold loop."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error

from tests.stack.conftest import new_caller

WIDEN_AFTER = 6  # seconds

# Support callers need billing >= 5 at first, anyone with billing >= 3 after WIDEN_AFTER seconds.
ROUTING = f"""
queues:
  sales: {{}}
  support:
    strategy: longest-idle
    steps:
      - {{after: 0, require: "billing >= 5"}}
      - {{after: {WIDEN_AFTER}, require: "billing >= 3"}}
agents:
  "1003": {{queues: [support], skills: {{billing: 7}}}}
  "1004": {{queues: [support], skills: {{billing: 3}}}}
"""


async def call_and_watch(engine, caller_number: str, *, hold_ms: int, explain_after: float | None = None):
    """Place a support call; return its call id, the explanation fetched while it waited (if
    asked), and its queued/offered/answered events."""
    caller = asyncio.create_task(new_caller("2", caller_number, hold_ms=hold_ms).run(timeout=45))
    call_id = await asyncio.to_thread(engine.call_id_for, caller_number)
    queued = await asyncio.to_thread(engine.wait_for_event, "queued", call_id=call_id)
    waiting = None
    if explain_after is not None:
        await asyncio.sleep(explain_after)
        waiting = await asyncio.to_thread(engine.api, "GET", f"/api/calls/{call_id}/explain")
    offered = await asyncio.to_thread(engine.wait_for_event, "offered", call_id=call_id, timeout=25)
    answered = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=call_id, timeout=25)
    result = await caller
    assert result.ok, result.describe()
    return call_id, waiting, queued, offered, answered


def test_call_waits_for_a_proficient_agent_then_widens_to_the_weak_one_on_time(engine_with_routing, phones):
    engine = engine_with_routing(ROUTING)
    strong, weak = phones("1003", mode="answer", ring_delay_ms=200), phones("1004", mode="answer", ring_delay_ms=200)
    engine.login("1003")
    engine.api("POST", "/api/agents/1003/pause", {"reason": "coaching"})
    engine.login("1004")  # the only free agent, and too weak for the first step

    call_id, waiting, queued, offered, answered = asyncio.run(
        call_and_watch(engine, "13900000031", hold_ms=(WIDEN_AFTER + 5) * 1000, explain_after=2.0))

    live = waiting["live"]
    assert (live["state"], live["requirement"], live["step"]["index"]) == ("waiting", "billing >= 5", 0)
    assert live["eligible_members"] == {"paused": ["1003"]} and live["ineligible_members"] == 1
    assert waiting["offers"] == []
    # offered exactly when the step came due: a timer at enqueue + 6 s, not a poll
    assert WIDEN_AFTER - 0.01 <= offered["data"]["wait"] < WIDEN_AFTER + 0.6, offered
    assert abs(live["next_step_at"] - (offered["ts"] - offered["data"]["wait"]) - WIDEN_AFTER) < 0.01
    why = offered["data"]["why"]
    assert (offered["agent_id"], why["trigger"], why["step"], why["requirement"]) == (
        "1004", "step_changed", 1, "billing >= 3")
    assert why["winner"]["score"] == 3
    kinds = [e["kind"] for e in engine.events(call_id)]
    assert kinds.index("step_changed") < kinds.index("offered")
    assert answered["agent_id"] == "1004"
    assert weak.answered_calls() == 1 and strong.invites_received() == 0

    # afterwards the API still says why 1004 got the call
    engine.wait_for_event("ended", call_id=call_id)
    explained = engine.api("GET", f"/api/calls/{call_id}/explain")
    assert explained["live"] is None
    assert [(o["agent_id"], o["requirement"]) for o in explained["offers"]] == [("1004", "billing >= 3")]


def test_proficient_agent_gets_the_call_at_once_although_the_weak_one_waited_longer(engine_with_routing, phones):
    engine = engine_with_routing(ROUTING)
    strong, weak = phones("1003", mode="answer", ring_delay_ms=200), phones("1004", mode="answer", ring_delay_ms=200)
    engine.login("1004")  # longest idle, but below the first step
    engine.login("1003")

    _, _, _, offered, answered = asyncio.run(call_and_watch(engine, "13900000032", hold_ms=5000))

    assert offered["agent_id"] == answered["agent_id"] == "1003"
    assert offered["data"]["wait"] < 1.0 and offered["data"]["why"]["step"] == 0
    assert strong.answered_calls() == 1 and weak.invites_received() == 0


def test_a_caller_who_waits_past_max_wait_is_taken_to_the_queue_voicemail(engine_with_routing, asterisk):
    engine = engine_with_routing("""
queues:
  sales: {}
  support:
    max_wait: {seconds: 3, then: voicemail}
""")  # nobody logged in: the caller can only wait

    async def scenario():
        caller = asyncio.create_task(new_caller("2", "13900000033", hold_ms=12000).run(timeout=40))
        call_id = await asyncio.to_thread(engine.call_id_for, "13900000033")
        exited = await asyncio.to_thread(engine.wait_for_event, "exited", call_id=call_id, timeout=15)
        seen = []
        for _ in range(40):  # the greeting (vm-intro) plays first, then VoiceMail records
            seen.append(await asyncio.to_thread(asterisk.cli, "core show channels concise"))
            if "VoiceMail!" in seen[-1]:
                break
            await asyncio.sleep(0.25)
        result = await caller
        return exited, "\n".join(seen), result

    exited, channels, result = asyncio.run(scenario())
    assert exited["data"]["reason"] == "max_wait:voicemail" and exited["queue"] == "support"
    assert 3.0 <= exited["data"]["wait"] < 4.0
    # the caller's channel left the hold loop for the greeting, then the support queue's box
    assert any("!cc-divert!voicemail!" in line and "Playback!vm-intro" in line for line in channels.splitlines())
    assert any("!cc-divert!voicemail!" in line and "VoiceMail!support@callcenter" in line
               for line in channels.splitlines()), channels
    assert result.ok, result.describe()


def test_reloading_the_routing_file_moves_a_waiting_caller_to_the_new_rules(engine_with_routing, phones):
    strict = ROUTING.replace(f"after: {WIDEN_AFTER}", "after: 600")  # no widening while we watch
    engine = engine_with_routing(strict)
    weak = phones("1004", mode="answer", ring_delay_ms=200)
    engine.login("1004")
    routing_file = engine.settings.routing_file

    async def scenario():
        caller = asyncio.create_task(new_caller("2", "13900000034", hold_ms=9000).run(timeout=40))
        call_id = await asyncio.to_thread(engine.call_id_for, "13900000034")
        await asyncio.to_thread(engine.wait_for_event, "queued", call_id=call_id)
        await asyncio.sleep(1.5)
        routing_file.write_text(strict.replace("billing >= 5", "billing >= 9").replace("queues: [support]", "queues: [nope]"))
        refused = await asyncio.to_thread(_reload_status, engine)
        routing_file.write_text(strict.replace("billing >= 5", "billing >= 3"))
        reloaded = await asyncio.to_thread(engine.api, "POST", "/api/routing/reload", {})
        offered = await asyncio.to_thread(engine.wait_for_event, "offered", call_id=call_id, timeout=10)
        result = await caller
        return call_id, refused, reloaded, offered, result

    call_id, refused, reloaded, offered, result = asyncio.run(scenario())
    assert refused[0] == 409 and "agents.1003.queues: unknown queue(s) ['nope']" in refused[1]
    assert reloaded == {"queues": ["sales", "support"], "agents": 2}
    why = offered["data"]["why"]
    assert (offered["agent_id"], why["trigger"], why["requirement"]) == ("1004", "reconfigured", "billing >= 3")
    assert offered["data"]["wait"] >= 1.5, "the caller kept its original enqueue time"
    assert result.ok and weak.answered_calls() == 1
    assert [e["kind"] for e in engine.events(call_id)].count("queued") == 1, "not re-queued, not dropped"

    # operators may also send the engine SIGHUP, as with most daemons
    routing_file.write_text(strict.replace("strategy: longest-idle", "strategy: round-robin"))
    engine.proc.send_signal(signal.SIGHUP)
    engine.wait_for_event("routing_reconfigured", after=offered["id"], timeout=10)
    assert next(q for q in engine.api("GET", "/api/queues") if q["queue"] == "support")["strategy"] == "round-robin"


def _reload_status(engine) -> tuple[int, str]:
    try:
        engine.api("POST", "/api/routing/reload", {})
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]
    return 200, ""


def test_an_ivr_queue_node_gives_its_callers_their_own_steps(engine_with_routing, phones, stack_dir):
    flows = stack_dir / "flows-own-steps"
    flows.mkdir()
    (flows / "main.yaml").write_text("""start: welcome
nodes:
  welcome: {type: menu, prompts: [hello], options: {"1": sales, "2": support}, timeout: 3, default: support}
  sales: {type: queue, queue: sales}
  support:
    type: queue
    queue: support
    steps: [{after: 0, require: "billing >= 3"}]
""")
    engine = engine_with_routing(ROUTING, flows_dir=flows)
    weak = phones("1004", mode="answer", ring_delay_ms=200)
    engine.login("1004")  # billing 3: too weak for the queue's own first step, enough for the flow's

    _, _, queued, offered, answered = asyncio.run(call_and_watch(engine, "13900000035", hold_ms=3000))

    assert queued["data"]["requirement"] == "billing >= 3"
    assert offered["data"]["why"]["requirement"] == "billing >= 3" and offered["data"]["wait"] < 1.0
    assert answered["agent_id"] == "1004" and weak.answered_calls() == 1
