"""Resync on the real stack: what the engine believes is put right from Asterisk's own channels
after every AMI login, whatever happened while it was not looking. Faults are injected for real:
an AMI connection cut (through a loopback TCP proxy), a connection dropped right after an
Originate was sent, ``core restart now``, and the engine killed with 50 callers waiting."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import pytest

from tests.stack.conftest import new_caller
from tests.stack.tcp_proxy import TcpProxy

PROXY_PORT = 15038
LEG = re.compile(r"-o\d+$")


def asterisk_calls(asterisk) -> set[str]:
    """Call ids Asterisk holds: every caller's channel (its uniqueid is the call id)."""
    calls = set()
    for line in asterisk.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if len(fields) < 14:
            continue
        name, uniqueid = fields[0], fields[13].strip()
        if name.startswith("PJSIP/agent") or LEG.search(uniqueid):
            continue
        calls.add(uniqueid)
    return calls


def engine_calls(engine) -> set[str]:
    """Call ids the engine's router holds: waiting or ringing in a queue, or on an agent's line."""
    calls = {c["call_id"] for q in engine.api("GET", "/api/queues") for c in q["waiting"] + q["ringing"]}
    calls |= {a["call_id"] for a in engine.api("GET", "/api/agents")
              if a.get("call_id") and a["state"] in ("on_call", "reserved")}
    return calls


@contextlib.contextmanager
def dialplan_globals(asterisk, **values):
    """Set dialplan globals for one test and put the session's values back afterwards."""
    shown = asterisk.cli("dialplan show globals")
    before = {name: re.search(rf"^\s*{name}=(\S*)", shown, re.M) for name in values}
    for name, value in values.items():
        asterisk.cli(f"dialplan set global {name} {value}")
    try:
        yield
    finally:
        for name, match in before.items():
            if match:
                asterisk.cli(f"dialplan set global {name} {match.group(1)}")


def wait_since(engine, since: float, kind: str, timeout: float = 20.0) -> dict:
    """The first ``kind`` event at or after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = engine.events_since(since, kind)
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {kind} event since {since} within {timeout} s\n{engine.log_tail()}")


@pytest.fixture
def ami_proxy(settings):
    proxy = TcpProxy(PROXY_PORT, settings.ami_port).start()
    yield proxy
    proxy.stop()


def test_an_ami_gap_is_reconciled_from_asterisk_channels(engine_with_routing, ami_proxy, phones, asterisk):
    """While the AMI link is cut: a connected call ends, a waiting caller hangs up and a new one
    enters the hold loop. None of it reaches the engine; the resync after the reconnect finds
    all three, and the new caller is served by the ACD rather than left to the maximum hold."""
    engine = engine_with_routing(None, ami_port=PROXY_PORT, ami_reconnect_max=1)
    phone = phones("1003", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=6000)
    since = time.time()
    engine.login("1003", "support")
    first, second, third = (new_caller("2", n, hold_ms=h) for n, h in
                            (("13900000101", None), ("13900000102", 2000), ("13900000103", None)))

    async def scenario():
        runs = [asyncio.create_task(first.run(timeout=60))]
        first_id = await asyncio.to_thread(engine.call_id_for, "13900000101")
        await asyncio.to_thread(engine.wait_for_event, "answered", call_id=first_id, agent_id="1003")
        runs.append(asyncio.create_task(second.run(timeout=60)))
        second_id = await asyncio.to_thread(engine.call_id_for, "13900000102")
        await asyncio.to_thread(engine.wait_for_event, "queued", call_id=second_id)
        ami_proxy.cut()
        cut_at = time.time()
        runs.append(asyncio.create_task(third.run(timeout=60)))
        await asyncio.sleep(6)  # the second caller hangs up, the first call ends, the third queues
        ami_proxy.restore()
        resynced = await asyncio.to_thread(wait_since, engine, cut_at, "resynced", 10)
        third_id = await asyncio.to_thread(engine.call_id_for, "13900000103")
        answered = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=third_id, timeout=15)
        diff = asterisk_calls(asterisk) ^ engine_calls(engine)
        return await asyncio.gather(*runs), first_id, second_id, third_id, resynced, answered, diff

    results, first_id, second_id, third_id, resynced, answered, diff = asyncio.run(scenario())
    assert all(r.ok for r in results), [r.describe() for r in results if not r.ok]
    assert diff == set(), f"engine and Asterisk disagree after the resync: {diff}"
    found = resynced["data"]
    assert found["adopted_waiting"] == 1 and third_id in found["calls"], found
    assert second_id in found["calls"] and found["gone_calls"] >= 1, found
    exited = engine.wait_for_event("exited", call_id=second_id)
    assert exited["data"]["reason"] == "resync:absent"
    assert answered["agent_id"] == "1003" and phone.answered_calls() == 2
    # the first call's end is logged once, whoever saw it
    assert len([e for e in engine.events(first_id) if e["kind"] == "ended"]) == 1
    assert not engine.events_since(since, "fallback"), "nobody went to the fallback route"


def test_a_connection_dropped_right_after_an_originate_rings_the_agent_once(engine_with_routing, ami_proxy,
                                                                            phones):
    """The Originate reaches Asterisk but its answer never reaches the engine. The agent's phone
    rings once, the resync finds the leg ringing and follows it: answered, no second INVITE,
    no second offer, and the leg is never hung up blind."""
    engine = engine_with_routing(None, ami_port=PROXY_PORT, ami_reconnect_max=1)
    phone = phones("1004", mode="answer_then_hangup", ring_delay_ms=3000, talk_ms=1000)
    caller = new_caller("2", "13900000104", hold_ms=None)
    since = time.time()

    async def scenario():
        run = asyncio.create_task(caller.run(timeout=60))
        call_id = await asyncio.to_thread(engine.call_id_for, "13900000104")
        await asyncio.to_thread(engine.wait_for_event, "queued", call_id=call_id)
        ami_proxy.cut_after(b"Action: Originate")
        engine.login("1004", "support")
        answered = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=call_id, timeout=20)
        return await run, call_id, answered

    result, call_id, answered = asyncio.run(scenario())
    assert ami_proxy.cuts == 1, "the connection was cut right after the Originate"
    assert result.ok and result.received_bye_from_far_end, result.describe()
    assert phone.invites_received() == 1 and phone.answered_calls() == 1, phone.log_tail()
    kinds = [e["kind"] for e in engine.events(call_id)]
    assert kinds.count("offered") == 1 and kinds.count("answered") == 1, kinds
    assert "offer_lost" not in kinds and "unreachable" not in " ".join(kinds)
    resynced = [e for e in engine.events_since(since, "resynced") if e["data"]["still_ringing"]]
    assert resynced, "the resync took over the ringing leg"


def test_core_restart_leaves_no_ghost_calls_and_the_engine_serves_again(engine_with_routing, phones, asterisk):
    engine = engine_with_routing(None, ami_reconnect_max=1)
    phone = phones("1009", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=20000)
    since = time.time()
    engine.login("1009", "support")
    talking, waiting = new_caller("2", "13900000105", hold_ms=None), new_caller("2", "13900000106", hold_ms=None)

    async def scenario():
        runs = [asyncio.create_task(talking.run(timeout=60))]
        talking_id = await asyncio.to_thread(engine.call_id_for, "13900000105")
        await asyncio.to_thread(engine.wait_for_event, "answered", call_id=talking_id)
        runs.append(asyncio.create_task(waiting.run(timeout=60)))
        waiting_id = await asyncio.to_thread(engine.call_id_for, "13900000106")
        await asyncio.to_thread(engine.wait_for_event, "queued", call_id=waiting_id)
        before = engine_calls(engine)
        restarted_at = time.time()
        asterisk.cli("core restart now")
        resynced = await asyncio.to_thread(wait_since, engine, restarted_at, "resynced", 30)
        await asyncio.sleep(0.5)
        after = (asterisk_calls(asterisk), engine_calls(engine))
        results = await asyncio.gather(*runs, return_exceptions=True)
        return before, after, resynced, results

    before, (asterisk_after, engine_after), resynced, _ = asyncio.run(scenario())
    assert len(before) == 2, before
    assert asterisk_after == engine_after == set(), (asterisk_after, engine_after)
    agent = next(a for a in engine.api("GET", "/api/agents") if a["agent_id"] == "1009")
    assert agent["state"] in ("available", "wrap_up"), agent
    # and it serves again: a new caller on the restarted Asterisk reaches the same agent
    result = asyncio.run(new_caller("2", "13900000107", hold_ms=1500).run(timeout=40))
    assert result.ok, result.describe()
    new_id = engine.call_id_for("13900000107")
    assert engine.wait_for_event("answered", call_id=new_id)["agent_id"] == "1009"
    assert phone.invites_received() >= 2
    assert resynced["data"]["fully_booted"] is True
    assert not [e for e in engine.events_since(since, "fallback")]


def test_fifty_waiting_callers_survive_an_engine_killed_with_sigkill(engine_with_routing, phones, asterisk):
    """kill -9 with 50 callers queued: they keep their music in Asterisk, the next engine
    re-adopts every one at its first login (with its place in line), and all 50 are answered."""
    engine = engine_with_routing(None)
    agents = ["1001", "1002", "1005", "1006", "1010"]
    numbers = [f"1390000{n:04d}" for n in range(200, 250)]
    callers = [new_caller("2", n, hold_ms=None, play_audio=False, max_wait_for_bye_ms=150_000) for n in numbers]
    since = time.time()
    with dialplan_globals(asterisk, CC_MAX_HOLD=300, CC_HEARTBEAT_MAX=30):
        async def scenario():
            runs = []
            for caller in callers:
                runs.append(asyncio.create_task(caller.run(timeout=170)))
                await asyncio.sleep(0.15)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                queued = {e["call_id"] for e in engine.events_since(since, "queued")}
                if len(queued) >= len(numbers):
                    break
                await asyncio.sleep(0.5)
            assert len(queued) == len(numbers), f"only {len(queued)} callers queued"
            engine.proc.kill()  # SIGKILL: no clean shutdown, nothing withdrawn, nothing flushed
            engine.proc.wait()
            killed_at = time.time()
            await asyncio.to_thread(engine.start)
            resynced = await asyncio.to_thread(wait_since, engine, killed_at, "resynced", 20)
            readopted_in = resynced["ts"] - killed_at
            for agent_id in agents:
                phones(agent_id, mode="answer_then_hangup", ring_delay_ms=100, talk_ms=300)
                engine.login(agent_id, "support")
            results = await asyncio.gather(*runs)
            return queued, resynced, readopted_in, results

        queued, resynced, readopted_in, results = asyncio.run(scenario())
    failed = [r.describe() for r in results if not (r.ok and r.received_bye_from_far_end)]
    assert not failed, failed[:3]
    found = resynced["data"]
    assert found["adopted_waiting"] + found["kept"] == 50, found
    answered = {e["call_id"]: e for e in engine.events_since(since, "answered")}
    assert queued <= set(answered), f"{len(queued - set(answered))} of 50 callers never answered"
    assert {answered[c]["agent_id"] for c in queued} <= set(agents)
    assert not [e for e in engine.events_since(since, "fallback", "exited") if e["call_id"] in queued]
    first_queued = {}
    for e in engine.events_since(since, "queued"):
        first_queued.setdefault(e["call_id"], e["ts"])
    # each kept its place: its wait counts from its first queueing, before the kill
    assert all(answered[c]["data"]["wait"] >= answered[c]["ts"] - first_queued[c] - 1.5 for c in queued)
    print(f"\n50 callers re-adopted {readopted_in:.2f} s after kill -9 (resync {found['ms']} ms, "
          f"{found['channels']} channels read)")
