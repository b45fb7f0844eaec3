"""RedisClaims against a real redis-server: two engines racing for calls and agents never share
one, claims are idempotent, released by compare-and-delete and freed by their TTL, the registry
survives a FLUSHALL through snapshot/rebuild, and a lost Redis is one clear error that goes
away when Redis is back."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from callcenter.shared import SharedStateUnavailable, connect
from callcenter.shared.claims import AgentEntry, RedisClaims, SharedSnapshot, WaitingCall
from tests.redis_server import run_bounded



def engines(url: str, *names: str) -> list[RedisClaims]:
    """One RedisClaims per engine name, each with its own client (its own connections)."""
    return [RedisClaims(connect(url), engine_id=name) for name in names]


async def close(*claims: RedisClaims) -> None:
    for each in claims:
        await each.redis.aclose()


def test_two_engines_racing_never_give_a_call_or_an_agent_to_two_offers(redis_server) -> None:
    rng = random.Random(20240325)
    # 200 offers over 40 calls and 25 agents: most of them collide with another on one side
    offers = [(f"offer-{n}", f"call-{rng.randrange(40)}", f"agent-{rng.randrange(25)}", rng.randrange(2))
              for n in range(200)]

    async def race():
        claimers = engines(redis_server.url, "engine-a", "engine-b")
        try:
            answers = await asyncio.gather(*(claimers[side].claim(offer, call, agent, ttl=60)
                                             for offer, call, agent, side in offers))
            raw = claimers[0].redis
            held = {key: await raw.get(key) for key in await raw.keys("cc:*-claim:*")}
            return answers, held
        finally:
            await close(*claimers)

    answers, held = run_bounded(race())
    winners = {offer: (call, agent, side) for (offer, call, agent, side), answer in zip(offers, answers) if answer.ok}
    assert Counter(call for call, _, _ in winners.values()).most_common(1)[0][1] == 1
    assert Counter(agent for _, agent, _ in winners.values()).most_common(1)[0][1] == 1
    assert {side for _, _, side in winners.values()} == {0, 1}  # both engines won some
    assert all(answer.reason == "claimed" for answer in answers if answer.ok)
    # every refusal names the winner that holds the contested call or agent, and its engine
    reasons = Counter()
    for (offer, call, agent, side), answer in zip(offers, answers):
        if answer.ok:
            continue
        reasons[answer.reason] += 1
        holder_call, holder_agent, holder_side = winners[answer.holder_offer]
        assert {"call_taken": holder_call == call, "agent_taken": holder_agent == agent}[answer.reason], answer
        assert answer.holder_engine == ("engine-a", "engine-b")[holder_side]
    assert reasons["call_taken"] > 0 and reasons["agent_taken"] > 0
    # what Redis holds is exactly the winners, each key naming its own winner
    expected = {}
    for offer, (call, agent, _) in winners.items():
        expected[f"cc:call-claim:{call}"] = offer
        expected[f"cc:agent-claim:{agent}"] = offer
    assert held == expected


def test_a_claim_is_idempotent_and_a_refused_claim_writes_nothing(redis_server) -> None:
    async def scenario():
        a, b = engines(redis_server.url, "engine-a", "engine-b")
        try:
            first = await a.claim("o1", "c1", "1001", ttl=60)
            again = await a.claim("o1", "c1", "1001", ttl=60)     # a retry whose answer was lost
            elsewhere = await b.claim("o1", "c1", "1001", ttl=60)  # the same offer id, seen from b
            call_taken = await b.claim("o2", "c1", "1002", ttl=60)
            agent_taken = await b.claim("o3", "c3", "1001", ttl=60)
            with pytest.raises(ValueError, match="o1"):
                await a.claim("o1", "c9", "1001", ttl=60)  # an offer id is one call and one agent
            keys = sorted(await a.redis.keys("cc:*"))
            holder = await b.holder_of_agent("1001")
            return first, again, elsewhere, call_taken, agent_taken, keys, holder
        finally:
            await close(a, b)

    first, again, elsewhere, call_taken, agent_taken, keys, holder = run_bounded(scenario())
    assert (first.ok, first.reason, first.holder_offer, first.holder_engine) == (True, "claimed", "o1", "engine-a")
    assert (again.ok, again.reason, again.holder_offer, again.holder_engine) == (True, "already_ours", "o1", "engine-a")
    assert (elsewhere.ok, elsewhere.reason, elsewhere.holder_engine) == (True, "already_ours", "engine-a")
    assert (call_taken.ok, call_taken.reason, call_taken.holder_offer, call_taken.holder_engine) == (
        False, "call_taken", "o1", "engine-a")
    assert (agent_taken.ok, agent_taken.reason, agent_taken.holder_offer) == (False, "agent_taken", "o1")
    assert keys == ["cc:agent-claim:1001", "cc:call-claim:c1", "cc:offer:o1"]  # nothing of o2 or o3
    assert (holder.offer_id, holder.call_id, holder.agent_id, holder.engine) == ("o1", "c1", "1001", "engine-a")


def test_release_and_connected_touch_only_keys_that_still_name_the_offer(redis_server) -> None:
    async def scenario():
        a, b = engines(redis_server.url, "engine-a", "engine-b")
        raw = a.redis
        try:
            assert (await a.claim("o1", "c1", "1001", ttl=0.2)).ok
            await asyncio.sleep(0.35)  # o1's claims expire (a slow engine, not yet told)
            assert (await b.claim("o2", "c1", "1001", ttl=60)).reason == "claimed"
            # a acts late on its expired offer: b's claims must stay b's, with b's TTL
            assert await a.connected("o1", ttl=600) is False
            assert await a.release("o1") is False
            assert (await a.holder_of_call("c1")).offer_id == "o2"
            assert (await a.holder_of_agent("1001")).offer_id == "o2"
            for key in ("cc:call-claim:c1", "cc:agent-claim:1001", "cc:offer:o2"):
                assert 0 < await raw.pttl(key) <= 60_000, key
            # the holder's own answer extends all three keys
            assert await b.connected("o2", ttl=600) is True
            for key in ("cc:call-claim:c1", "cc:agent-claim:1001", "cc:offer:o2"):
                assert 60_000 < await raw.pttl(key) <= 600_000, key
            # and its own release frees them for anyone
            assert await b.release("o2") is True
            assert await a.holder_of_call("c1") is None and await a.holder_of_agent("1001") is None
            assert await raw.keys("cc:*") == []
            assert await b.release("o2") is False  # twice is harmless
            assert (await a.claim("o3", "c1", "1001", ttl=60)).reason == "claimed"
        finally:
            await close(a, b)

    run_bounded(scenario())


def test_release_by_another_engine_object_finds_the_offer_through_its_record(redis_server) -> None:
    async def scenario():
        a, restarted_a = engines(redis_server.url, "engine-a", "engine-a")
        try:
            assert (await a.claim("o1", "c1", "1001", ttl=60)).ok
            # an engine restarted since the claim has no memory of it: the offer's record leads
            assert await restarted_a.release("o1") is True
            return await a.redis.keys("cc:*")
        finally:
            await close(a, restarted_a)

    assert run_bounded(scenario()) == []


def test_a_dead_engines_claims_free_up_when_their_ttl_ends(redis_server) -> None:
    async def scenario():
        dead, alive = engines(redis_server.url, "engine-dead", "engine-alive")
        try:
            assert (await dead.claim("o1", "c1", "1001", ttl=0.5)).ok
            await dead.redis.aclose()  # the engine dies without releasing anything
            before_call = await alive.claim("o2", "c1", "1002", ttl=60)
            before_agent = await alive.claim("o3", "c2", "1001", ttl=60)
            await asyncio.sleep(0.8)
            after = await alive.claim("o4", "c1", "1001", ttl=60)
            return before_call, before_agent, after
        finally:
            await alive.redis.aclose()

    before_call, before_agent, after = run_bounded(scenario())
    assert (before_call.ok, before_call.reason, before_call.holder_engine) == (False, "call_taken", "engine-dead")
    assert (before_agent.ok, before_agent.reason, before_agent.holder_engine) == (False, "agent_taken", "engine-dead")
    assert (after.ok, after.reason) == (True, "claimed")


def test_registry_writes_move_and_remove_calls_and_agents(redis_server) -> None:
    async def scenario():
        (a,) = engines(redis_server.url, "engine-a")
        try:
            await a.call_waiting("c1", "sales", enqueued_at=10.0)
            await a.call_waiting("c1", "support", enqueued_at=10.0, priority=3)  # transferred
            moved = await a.snapshot()
            queue_sets = sorted(await a.redis.smembers("cc:queues")), await a.redis.exists("cc:queue:sales")
            assert await a.call_left("c1") is True
            assert await a.call_left("c1") is False
            await a.agent_state("1001", "ready", ["support"], since=5.0)
            await a.agent_state("1001", "paused", [], since=6.0)
            paused = await a.snapshot()
            assert await a.agent_left("1001") is True
            with pytest.raises(ValueError):
                await a.agent_state("1002", "ready", ["a,b"])
            return moved, queue_sets, paused, await a.redis.keys("cc:*")
        finally:
            await close(a)

    moved, queue_sets, paused, left_over = run_bounded(scenario())
    assert moved.waiting == {"support": [WaitingCall("c1", "support", 3, 10.0, "engine-a")]}
    assert queue_sets == (["support"], 0)  # never in two queues; an empty queue is dropped
    assert paused == SharedSnapshot({}, {"1001": AgentEntry("1001", "paused", (), "engine-a", 6.0)})
    assert left_over == []


def test_snapshot_and_rebuild_bring_the_registry_back_after_a_flushall(redis_server) -> None:
    async def scenario():
        a, b = engines(redis_server.url, "engine-a", "engine-b")
        try:
            await a.call_waiting("c1", "support", priority=5, enqueued_at=1711352000.123456,
                                 caller_channel="PJSIP/caller-00000001")
            await b.call_waiting("c2", "support", enqueued_at=1711351999.5)
            await a.call_waiting("c3", "sales", enqueued_at=1711352001.0)
            await a.agent_state("1001", "ready", ["support", "sales"], since=1711351000.25)
            await b.agent_state("1002", "paused", ["support"], since=1711351100.0)
            before = await a.snapshot()
            keys_before = sorted(await a.redis.keys("cc:*"))
            await a.redis.flushall()
            emptied = await a.snapshot()
            # something written after the loss and before the rebuild is replaced, not merged
            await b.call_waiting("stale", "support", enqueued_at=1.0)
            await b.agent_state("9999", "ready", ["sales"], since=1.0)
            await a.rebuild(before)
            return before, keys_before, emptied, await b.snapshot(), sorted(await a.redis.keys("cc:*"))
        finally:
            await close(a, b)

    before, keys_before, emptied, after, keys_after = run_bounded(scenario())
    assert before == SharedSnapshot(
        waiting={"sales": [WaitingCall("c3", "sales", 0, 1711352001.0, "engine-a")],
                 "support": [WaitingCall("c2", "support", 0, 1711351999.5, "engine-b"),
                             WaitingCall("c1", "support", 5, 1711352000.123456, "engine-a",
                                         "PJSIP/caller-00000001")]},
        agents={"1001": AgentEntry("1001", "ready", ("support", "sales"), "engine-a", 1711351000.25),
                "1002": AgentEntry("1002", "paused", ("support",), "engine-b", 1711351100.0)})
    assert emptied == SharedSnapshot({}, {})
    assert after == before
    assert keys_after == keys_before


def test_a_lost_redis_is_one_clear_error_and_the_same_object_works_once_it_is_back(redis_server) -> None:
    async def scenario():
        (claims,) = engines(redis_server.url, "engine-a")
        try:
            assert (await claims.claim("o1", "c1", "1001", ttl=60)).ok  # the scripts are loaded
            await claims.call_waiting("c9", "support")
            redis_server.kill()
            every_method = {
                "claim": lambda: claims.claim("o2", "c2", "1002", ttl=60),
                "connected": lambda: claims.connected("o1", ttl=600),
                "release": lambda: claims.release("o-unknown"),
                "holder_of_call": lambda: claims.holder_of_call("c1"),
                "holder_of_agent": lambda: claims.holder_of_agent("1001"),
                "call_waiting": lambda: claims.call_waiting("c2", "support"),
                "call_left": lambda: claims.call_left("c9"),
                "agent_state": lambda: claims.agent_state("1001", "ready", ["support"]),
                "agent_left": lambda: claims.agent_left("1001"),
                "snapshot": claims.snapshot,
                "rebuild": lambda: claims.rebuild(SharedSnapshot({}, {})),
            }
            errors = {}
            for name, call in every_method.items():
                with pytest.raises(SharedStateUnavailable) as caught:
                    await call()
                errors[name] = caught.value
            redis_server.restart()  # on the same port, and empty
            # the same object, the same client: reconnects, and loads its scripts again
            back = await claims.claim("o2", "c2", "1002", ttl=60)
            await claims.call_waiting("c2", "support", enqueued_at=5.0)
            return errors, back, await claims.snapshot(), await claims.holder_of_call("c2")
        finally:
            await close(claims)

    errors, back, snapshot, holder = run_bounded(scenario())
    for name, error in errors.items():
        assert isinstance(error, ConnectionError), name
        assert error.__cause__ is not None and "Redis unreachable" in str(error), name
    assert (back.ok, back.reason) == (True, "claimed")
    assert snapshot == SharedSnapshot({"support": [WaitingCall("c2", "support", 0, 5.0, "engine-a")]}, {})
    assert holder.offer_id == "o2"
