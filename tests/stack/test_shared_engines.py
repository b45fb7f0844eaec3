"""Two engines on one Redis serve the same queues of one Asterisk, under random load: every
caller is seen by both, each engine rings its own agents, and the offers are claimed in Redis
first, so the ACD's invariants hold across the two: a call rings one agent at a time and is
answered at most once, an agent never rings for two calls, and every caller's fate is logged once.
Then redis-server is killed mid-load: both engines go on serving from their own state, and when
Redis comes back empty they write it back themselves."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import urllib.error
from collections import Counter, defaultdict

import pytest
import redis as redis_py

from callcenter import shared
from callcenter.shared.stream import StreamConsumer, sql_event_store
from tests.redis_server import throwaway_redis
from tests.stack.conftest import TEST_SETTINGS, new_caller, running_engine
from tests.stack.harness import write_settings

EAST_AGENTS = ["1001", "1002", "1005"]
WEST_AGENTS = ["1006", "1007", "1010"]
RING_OVERLAP_TOLERANCE = 0.2  # seconds between one phone's CANCEL and the next phone's INVITE


@pytest.fixture
def redis_server(tmp_path):
    with throwaway_redis(tmp_path) as server:
        yield server


@contextlib.contextmanager
def two_engines(asterisk, stack_dir, redis_url: str):
    """East runs the IVR (the dialplan's FastAGI address); both share Redis and the database."""
    with contextlib.ExitStack() as stack:
        engines = []
        for name, web_port, agi_port in (("east", 18081, 4573), ("west", 18082, 4574)):
            config = write_settings(stack_dir / f"settings-shared-{name}.yaml",
                                    **{"data_dir": stack_dir / "data", **TEST_SETTINGS, "web_port": web_port,
                                       "agi_port": agi_port, "redis_url": redis_url, "engine_name": name})
            engines.append(stack.enter_context(running_engine(asterisk, config,
                                                              stack_dir / f"engine-shared-{name}.log")))
        yield engines


def log_in_support(east, west) -> None:
    for engine, agents in ((east, EAST_AGENTS), (west, WEST_AGENTS)):
        for agent_id in agents:
            engine.login(agent_id, "support")


def login_refused(engine, agent_id: str) -> str | None:
    """The refusal (409) the engine gives a login of ``agent_id``; None if it let the agent in."""
    try:
        engine.login(agent_id, "support")
    except urllib.error.HTTPError as exc:
        assert exc.code == 409, exc
        return exc.read().decode()
    return None


def agent_state(engine, agent_id: str) -> str:
    return next((a["state"] for a in engine.api("GET", "/api/agents") if a["agent_id"] == agent_id), "logged_out")


def wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return value


async def replay_stream(url: str, db, *, times: int) -> int:
    """Store every entry of the event stream into the log ``times`` over; how many were handed on."""
    client = shared.connect(url)
    try:
        consumer = StreamConsumer(client, sql_event_store(db), stream="cc:events", consumer="replay")
        return sum([await consumer.replay() for _ in range(times)])
    finally:
        await client.aclose()


def start_phones(phones, agents, rng):
    started = {}
    for agent_id in agents:
        # one phone in six lets it ring out: its offers go back and may be taken by the other engine
        mode = "never_answer" if rng.random() < 1 / 6 else "answer_then_hangup"
        started[agent_id] = phones(agent_id, mode=mode, ring_delay_ms=rng.randint(100, 600),
                                   talk_ms=rng.randint(600, 1500))
    return started


async def place_callers(numbers, rng, *, patient_share: float = 0.7):
    """Callers pressing 2 (support), a random gap apart; most wait for an agent (and the agent's
    BYE), the others hang up after a random while, waiting or talking."""
    runs, patient = [], set()
    for number in numbers:
        if rng.random() < patient_share:
            patient.add(number)
            caller = new_caller("2", number, hold_ms=None, play_audio=False, max_wait_for_bye_ms=90_000)
        else:
            caller = new_caller("2", number, hold_ms=rng.randint(2500, 7000), play_audio=False)
        runs.append(asyncio.create_task(caller.run(timeout=100)))
        await asyncio.sleep(rng.uniform(0.1, 0.4))
    return runs, patient


def rings_by_caller(phones_by_agent):
    """caller number -> [(start, end, agent)] of every time an agent's phone rang for them."""
    rings = defaultdict(list)
    for agent_id, phone in phones_by_agent.items():
        for call in phone.calls():
            end = call.ended_at or call.cancelled_at
            assert end is not None, f"phone {agent_id}: call from {call.caller} never ended"
            rings[call.caller].append((call.invited_at.timestamp(), end.timestamp(), agent_id))
    return rings


def overlapping(intervals, tolerance=0.0):
    """Pairs of intervals (start, end, who) that overlap by more than ``tolerance`` seconds."""
    ordered = sorted(intervals)
    return [(a, b) for a, b in zip(ordered, ordered[1:]) if b[0] < a[1] - tolerance]


def check_invariants(engine, since, numbers, patient, results, phones_by_agent, *, strict_rings: bool):
    failed = [r.describe() for r, n in zip(results, numbers) if n in patient and not
              (r.ok and r.received_bye_from_far_end)]
    assert not failed, f"{len(failed)} waiting callers were not served: {failed[:3]}"
    arrived = {e["data"]["caller"]: e["call_id"] for e in engine.events_since(since, "call_arrived")
               if e["data"].get("caller") in numbers}
    assert len(arrived) == len(numbers)
    calls = set(arrived.values())
    rows = [e for e in engine.events_since(since) if e["call_id"] in calls]
    per_call = defaultdict(Counter)
    for e in rows:
        per_call[e["call_id"]][e["kind"]] += 1
    for number, call_id in arrived.items():
        kinds = per_call[call_id]
        # logged once, although both engines saw the caller queue (and leave)
        assert kinds["queued"] == 1, (number, kinds)
        assert kinds["answered"] <= 1, (number, kinds)
        outcomes = kinds["answered"] + kinds["abandoned"] + kinds["exited"]
        assert outcomes == 1, f"call {call_id} from {number}: {dict(kinds)}"
        assert kinds["ended"] == kinds["answered"], (number, kinds)
        if number in patient:
            assert kinds["answered"] == 1, (number, kinds)
    # an agent's phone never rang for two calls at once
    for agent_id, phone in phones_by_agent.items():
        intervals = [(c.invited_at.timestamp(), (c.ended_at or c.cancelled_at).timestamp(), c.caller)
                     for c in phone.calls()]
        assert not overlapping(intervals), f"agent {agent_id} rang for two calls at once"
    double_rings = {number: pairs for number, rings in rings_by_caller(phones_by_agent).items()
                    if number in numbers and (pairs := overlapping(rings, RING_OVERLAP_TOLERANCE))}
    if strict_rings:
        assert not double_rings, f"calls rang two agents at once: {double_rings}"
    answered_by = {e["agent_id"] for e in rows if e["kind"] == "answered"}
    return answered_by, double_rings


def test_two_engines_on_one_redis_share_the_queues_under_random_load(asterisk, stack_dir, phones, redis_server):
    rng = random.Random(20261122)
    with two_engines(asterisk, stack_dir, redis_server.url) as (east, west):
        log_in_support(east, west)
        # The registry: an agent logged in on one engine is refused on the other. Within the
        # second before the other engine has read the registry, the login goes through and is
        # undone: the first login stands.
        if login_refused(west, "1001") is None:
            wait_until(lambda: agent_state(west, "1001") == "logged_out", 3, "1001 logged out on west")
        refusal = wait_until(lambda: login_refused(west, "1001"), 3, "a login of 1001 on west refused")
        assert "engine east" in refusal, refusal
        assert agent_state(east, "1001") == "available"
        # one floor across the engines: east sees west's agents, and pausing one of them from
        # east is carried out by west (the live fan-out)
        shared = wait_until(lambda: (view := east.api("GET", "/api/shared")) and len(view["agents"]) == 6 and view,
                            3, "east sees all six agents")
        assert {a["agent_id"]: a["engine"] for a in shared["agents"]} == {
            **dict.fromkeys(EAST_AGENTS, "east"), **dict.fromkeys(WEST_AGENTS, "west")}
        assert east.api("POST", "/api/agents/1006/pause", {"reason": "break"})["engine"] == "west"
        wait_until(lambda: agent_state(west, "1006") == "paused", 3, "1006 paused on west")
        east.api("POST", "/api/agents/1006/unpause", {})
        wait_until(lambda: agent_state(west, "1006") == "available", 3, "1006 available again on west")

        phones_by_agent = start_phones(phones, EAST_AGENTS + WEST_AGENTS, rng)
        numbers = [f"1390000{n:04d}" for n in range(300, 330)]
        since = time.time()

        async def load():
            most_waiting = 0

            async def sample_registry():  # west's view of the shared registry while callers queue
                nonlocal most_waiting
                while True:
                    view = await asyncio.to_thread(west.api, "GET", "/api/shared")
                    most_waiting = max(most_waiting, sum(len(calls) for calls in view["waiting"].values()))
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample_registry())
            runs, patient = await place_callers(numbers, rng)
            results = await asyncio.gather(*runs)
            sampler.cancel()
            return results, patient, most_waiting

        results, patient, most_waiting = asyncio.run(load())
        assert most_waiting >= 3, f"the shared registry never listed callers waiting ({most_waiting})"
        time.sleep(1.5)  # the last events reach the database
        answered_by, _ = check_invariants(east, since, numbers, patient, results, phones_by_agent, strict_rings=True)
        # both engines' agents took calls: the queue is one, served by two engines
        assert answered_by & set(EAST_AGENTS) and answered_by & set(WEST_AGENTS), answered_by
        # the log was fed through the Redis stream: both engines published, the group holds nothing back
        client = redis_py.Redis.from_url(redis_server.url, decode_responses=True)
        relayed = {fields["key"] for _, fields in client.xrange("cc:events")}
        stored = {e["event_key"] for e in east.events_since(since)}
        assert stored <= relayed | {None}, f"{len(stored - relayed)} events stored without the stream"
        group = next(g for g in client.xinfo_groups("cc:events") if g["name"] == "event-log")
        assert group["pending"] == 0, group
        # every caller has left, and the shared registry of waiting calls says so
        wait_until(lambda: not client.smembers("cc:queues"), 3, "no queue with waiting calls in Redis")
        client.close()
        # replaying the whole stream into the log three times adds no row
        rows_before = len(east.events())
        assert asyncio.run(replay_stream(redis_server.url, east.db, times=3)) >= 3 * len(relayed)
        assert len(east.events()) == rows_before
        served_elsewhere = [e for e in east.events_since(since, "served_elsewhere")]
        assert served_elsewhere, "no engine saw the other serve a caller"
        print(f"\n{len(numbers)} callers, {len(patient)} patient: answered by {sorted(answered_by)}; "
              f"{len(served_elsewhere)} served_elsewhere; up to {most_waiting} waiting in the shared registry")


def test_killing_redis_mid_load_drops_no_caller_and_redis_is_rebuilt(asterisk, stack_dir, phones, redis_server):
    rng = random.Random(42)
    with two_engines(asterisk, stack_dir, redis_server.url) as (east, west):
        log_in_support(east, west)
        phones_by_agent = {a: phones(a, mode="answer_then_hangup", ring_delay_ms=rng.randint(100, 500),
                                     talk_ms=rng.randint(800, 1500)) for a in EAST_AGENTS + WEST_AGENTS}
        numbers = [f"1390000{n:04d}" for n in range(330, 354)]
        since = time.time()

        async def load():
            runs, patient = await place_callers(numbers[:8], rng, patient_share=1.0)
            redis_server.kill()  # mid-load: callers waiting, ringing and talking
            killed = time.time()
            more, more_patient = await place_callers(numbers[8:16], rng, patient_share=1.0)
            health = await asyncio.to_thread(east.api, "GET", "/api/health")
            await asyncio.sleep(3)
            redis_server.restart()  # back, and empty
            rest, rest_patient = await place_callers(numbers[16:], rng, patient_share=1.0)
            return await asyncio.gather(*runs, *more, *rest), patient | more_patient | rest_patient, killed, health

        results, patient, killed, health = asyncio.run(load())
        time.sleep(1.5)
        assert health["parts"]["redis"]["ok"] is False, health
        _, double_rings = check_invariants(east, since, numbers, patient, results, phones_by_agent,
                                           strict_rings=False)
        # rebuilt by the engines themselves: both alive again, every logged-in agent registered
        client = redis_py.Redis.from_url(redis_server.url, decode_responses=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(client.smembers("cc:agents")) < 6:
            time.sleep(0.2)
        assert client.smembers("cc:agents") == set(EAST_AGENTS + WEST_AGENTS)
        assert {client.hget(f"cc:agent:{a}", "engine") for a in EAST_AGENTS} == {"east"}
        assert client.exists("cc:engine:east") and client.exists("cc:engine:west")
        wait_until(lambda: not client.smembers("cc:queues"), 3, "no queue with waiting calls in Redis")
        client.close()
        print(f"\nredis killed {killed - since:.1f} s into the load: {len(numbers)} callers all served, "
              f"{len(double_rings)} rang two agents at once while Redis was away")


def test_a_supervisor_on_one_engine_moves_a_caller_for_every_engine(asterisk, stack_dir, phones, redis_server):
    """Both engines have the caller waiting; a supervisor on east moves it to sales and raises its
    priority: west follows (over the fan-out), so west's sales agent takes it."""
    with two_engines(asterisk, stack_dir, redis_server.url) as (east, west):
        caller = new_caller("2", "13900000360", hold_ms=None, play_audio=False, max_wait_for_bye_ms=40_000)

        async def scenario():
            run = asyncio.create_task(caller.run(timeout=50))
            call_id = await asyncio.to_thread(east.call_id_for, "13900000360")
            for engine in (east, west):
                await asyncio.to_thread(wait_until, lambda e=engine: waiting_in(e, "support") == [call_id], 10,
                                        f"the caller waiting in support on {engine.settings.engine_name}")
            moved = await asyncio.to_thread(east.api, "POST", f"/api/supervisor/calls/{call_id}/move",
                                            {"queue": "sales"})
            assert moved == {"call_id": call_id, "queue": "sales"}
            await asyncio.to_thread(east.api, "POST", f"/api/supervisor/calls/{call_id}/priority", {"priority": 5})
            await asyncio.to_thread(wait_until, lambda: waiting_in(west, "sales") == [call_id], 3,
                                    "west has the caller in sales")
            assert next(q for q in west.api("GET", "/api/queues") if q["queue"] == "sales")["waiting"][0][
                "priority"] == 5
            phones("1006", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=800)
            await asyncio.to_thread(west.login, "1006", "sales")
            return call_id, await run

        call_id, result = asyncio.run(scenario())
    assert result.ok and result.received_bye_from_far_end, result.describe()
    rows = [e for e in east.events(call_id)]
    assert [e["agent_id"] for e in rows if e["kind"] == "answered"] == ["1006"]
    moved = [e for e in rows if e["kind"] == "moved"]
    assert len(moved) == 1, moved  # logged by both engines, stored once
    assert [e["queue"] for e in rows if e["kind"] == "answered"] == ["sales"]


def waiting_in(engine, queue: str) -> list[str]:
    return [c["call_id"] for q in engine.api("GET", "/api/queues") if q["queue"] == queue
            for c in q["waiting"]]
