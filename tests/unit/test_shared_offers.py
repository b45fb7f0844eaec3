"""SharedOffers (two engines' side of sharing queues) against a real redis-server: claims won,
refused for a taken call or agent and given back; a connected call's claim kept for the
conversation; one-off actions done once; the agents' registry read by the other engines; and a
Redis that dies (offers go ahead unguarded) and comes back empty (the refresh writes it back)."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from callcenter.shared import SharedStateUnavailable, connect
from callcenter.shared.claims import RedisClaims, WaitingCall
from callcenter.shared.offers import AGENT_TAKEN, CALL_TAKEN, OURS, UNGUARDED, SharedOffers
from tests.redis_server import run_bounded, wait_until

RING_TTL = 5.0
TALK_TTL = 100.0



def engine(url: str, name: str, **kwargs) -> SharedOffers:
    """One engine's SharedOffers, with its own RedisClaims and its own client."""
    options = {"ring_ttl": RING_TTL, "talk_ttl": TALK_TTL, **kwargs}
    return SharedOffers(RedisClaims(connect(url, timeout=1.0), engine_id=name), **options)


async def close(*engines: SharedOffers) -> None:
    for each in engines:
        await each.claims.redis.aclose()


def two_engines(redis_server, scenario, **kwargs):
    async def run():
        e1, e2 = engine(redis_server.url, "e1", **kwargs), engine(redis_server.url, "e2", **kwargs)
        try:
            return await scenario(e1, e2)
        finally:
            await close(e1, e2)
    return run_bounded(run(), 20)


def test_a_call_or_an_agent_claimed_by_one_engine_is_refused_to_the_other_until_released(redis_server):
    async def scenario(e1, e2):
        assert await e1.claim("A/1", "A", "1001") == OURS
        assert await e2.claim("A/1", "A", "1002") == CALL_TAKEN
        assert await e2.claim("B/1", "B", "1001") == AGENT_TAKEN
        raw = e1.claims.redis
        assert await raw.get("cc:call-claim:A") == "e1:A/1" and await raw.get("cc:agent-claim:1001") == "e1:A/1"
        assert await raw.get("cc:agent-claim:1002") is None  # a refused claim writes nothing
        assert await raw.get("cc:call-claim:B") is None
        await e2.release("A/1")                              # not e2's: changes nothing
        assert await raw.get("cc:call-claim:A") == "e1:A/1"
        assert await e1.claim("A/1", "A", "1001") == OURS    # claiming one's own again is fine
        await e1.release("A/1")
        assert await raw.get("cc:call-claim:A") is None and await raw.get("cc:agent-claim:1001") is None
        assert await e2.claim("A/2", "A", "1002") == OURS
        assert await e2.claim("B/1", "B", "1001") == OURS
        assert await e1.claim("A/3", "A", "1003") == CALL_TAKEN
        assert e1.available is True and e2.available is True
    two_engines(redis_server, scenario)


def test_a_ringing_claim_lasts_the_ring_ttl_and_connected_extends_it_for_the_conversation(redis_server):
    async def scenario(e1, e2):
        assert await e1.claim("A/1", "A", "1001") == OURS
        raw = e1.claims.redis
        ringing = await raw.pttl("cc:call-claim:A")
        assert 0 < ringing <= RING_TTL * 1000
        await e1.connected("A/1")
        for key in ("cc:call-claim:A", "cc:agent-claim:1001", "cc:offer:e1:A/1"):
            assert RING_TTL * 1000 < await raw.pttl(key) <= TALK_TTL * 1000, key
        await e1.connected("nope/1")   # an offer the engine does not hold: nothing happens
        assert await raw.get("cc:call-claim:nope") is None
    two_engines(redis_server, scenario)


def test_a_claim_that_expired_before_the_answer_is_claimed_again_by_the_refresh(redis_server):
    async def scenario(e1, e2):
        assert await e1.claim("A/1", "A", "1001") == OURS
        raw = e1.claims.redis
        await wait_until(lambda: _gone(raw, "cc:call-claim:A"), seconds=5, what="the ring claim expiring")
        await e1.connected("A/1")
        assert await raw.get("cc:call-claim:A") is None
        await e1.refresh()
        assert await raw.get("cc:call-claim:A") == "e1:A/1"
        assert RING_TTL * 1000 < await raw.pttl("cc:call-claim:A")   # claimed again as a conversation
        assert await e2.claim("A/2", "A", "1002") == CALL_TAKEN
    two_engines(redis_server, scenario, ring_ttl=0.2)


async def _gone(raw, key: str) -> bool:
    return await raw.exists(key) == 0


def test_once_is_true_for_the_first_engine_only(redis_server):
    async def scenario(e1, e2):
        assert await e1.once("divert:A") is True
        assert await e2.once("divert:A") is False
        assert await e1.once("divert:A") is False
        assert await e2.once("divert:B") is True
        assert await e1.claims.redis.get("cc:once:divert:A") == "e1"
    two_engines(redis_server, scenario)


def test_an_agent_logged_in_on_one_live_engine_is_reported_to_the_others(redis_server):
    async def scenario(e1, e2):
        e1.agent_state("1001", "available", ["sales"])
        e1.agent_state("1002", "paused", ["sales", "support"])
        await e1.refresh()
        await e2.refresh()
        assert e2.logged_in_elsewhere("1001") == "e1"
        assert e2.logged_in_elsewhere("1002") == "e1"      # paused is still logged in
        assert e2.logged_in_elsewhere("1003") is None
        assert e1.logged_in_elsewhere("1001") is None      # its own agents are not "elsewhere"
        raw = e1.claims.redis
        assert await raw.hgetall("cc:agent:1001") == {"state": "available", "queues": "sales", "engine": "e1",
                                                      "since": await raw.hget("cc:agent:1001", "since")}
        # logged out: taken out of the registry at e1's next refresh
        e1.agent_state("1001", "logged_out", [])
        assert e2.logged_in_elsewhere("1001") == "e1"      # until then, as of e2's last refresh
        await e1.refresh()
        assert await raw.exists("cc:agent:1001") == 0
        await e2.refresh()
        assert e2.logged_in_elsewhere("1001") is None
        assert e2.logged_in_elsewhere("1002") == "e1"
    two_engines(redis_server, scenario)


def test_the_agents_of_an_engine_that_stopped_saying_it_is_alive_are_not_reported(redis_server):
    async def scenario():
        e1 = engine(redis_server.url, "e1", engine_ttl=0.5)
        e2 = engine(redis_server.url, "e2")
        try:
            e1.agent_state("1001", "on_call", ["sales"])
            await e1.refresh()
            await e2.refresh()
            assert e2.logged_in_elsewhere("1001") == "e1"
            raw = e2.claims.redis
            await wait_until(lambda: _gone(raw, "cc:engine:e1"), seconds=5, what="e1's engine key expiring")
            assert await raw.exists("cc:agent:1001") == 1      # the entry stays; its engine is dead
            await e2.refresh()
            assert e2.logged_in_elsewhere("1001") is None
            await e1.refresh()                                 # e1 alive again
            await e2.refresh()
            assert e2.logged_in_elsewhere("1001") == "e1"
        finally:
            await close(e1, e2)
    run_bounded(scenario(), 20)


def test_redis_lost_then_back_empty_offers_go_ahead_and_the_refresh_writes_them_back(redis_server):
    async def scenario():
        e1, e2 = engine(redis_server.url, "e1"), engine(redis_server.url, "e2")
        try:
            e1.agent_state("1001", "reserved", ["sales"])
            await e1.refresh()
            redis_server.kill()
            assert await e1.claim("A/1", "A", "1001") == UNGUARDED   # no exception: the call goes on
            assert e1.available is False
            assert await e1.once("divert:A") is True                  # better twice than never
            with pytest.raises(SharedStateUnavailable):
                await e1.refresh()
            redis_server.restart()                                    # the same port, and empty
            raw = e2.claims.redis
            assert await raw.dbsize() == 0
            assert await e2.claim("A/9", "A", "1009") == OURS         # meanwhile another engine...
            await e2.release("A/9")                                   # ...let it go again
            await e1.refresh()
            assert await raw.get("cc:call-claim:A") == "e1:A/1"
            assert await raw.get("cc:agent-claim:1001") == "e1:A/1"
            assert await raw.hget("cc:offer:e1:A/1", "engine") == "e1"
            assert await raw.hget("cc:agent:1001", "engine") == "e1"
            assert await raw.hget("cc:agent:1001", "state") == "reserved"
            assert await raw.exists("cc:engine:e1") == 1
            assert await e2.claim("A/10", "A", "1010") == CALL_TAKEN
            await e2.refresh()
            assert e2.logged_in_elsewhere("1001") == "e1"
            # re-claimed once: a later refresh leaves the claim alone, a release gives it back
            await e1.refresh()
            await e1.release("A/1")
            assert await raw.get("cc:call-claim:A") is None
        finally:
            await close(e1, e2)
    run_bounded(scenario(), 30)


def test_the_refresh_loop_claims_every_held_offer_again_after_redis_came_back_empty(redis_server):
    async def scenario():
        e1 = engine(redis_server.url, "e1", refresh_seconds=0.05)
        raw = connect(redis_server.url, timeout=1.0)
        loop = asyncio.create_task(e1.run())
        try:
            e1.agent_state("1001", "on_call", ["sales"])
            assert await e1.claim("A/1", "A", "1001") == OURS        # claimed while Redis was there
            await e1.connected("A/1")
            assert await e1.claim("B/1", "B", "1002") == OURS
            redis_server.kill()
            await wait_until(lambda: e1.available is False, seconds=10, what="the loop noticing Redis gone")
            redis_server.restart()
            await wait_until(lambda: _all_there(raw), seconds=10, what="claims and registry written back")
            assert await raw.get("cc:call-claim:A") == "e1:A/1" and await raw.get("cc:call-claim:B") == "e1:B/1"
            assert await raw.pttl("cc:call-claim:A") > RING_TTL * 1000   # the conversation's claim
            assert await raw.pttl("cc:call-claim:B") <= RING_TTL * 1000  # the ringing one's
            assert e1.available is True
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await close(e1)
            await raw.aclose()
    run_bounded(scenario(), 30)


async def _all_there(raw) -> bool:
    try:
        return await raw.exists("cc:call-claim:A", "cc:call-claim:B", "cc:agent:1001", "cc:engine:e1") == 4
    except redis.exceptions.RedisError:
        return False


def test_release_unanswered_gives_back_ringing_offers_and_keeps_conversations(redis_server):
    async def scenario(e1, e2):
        assert await e1.claim("A/1", "A", "1001") == OURS
        assert await e1.claim("B/1", "B", "1002") == OURS
        await e1.connected("B/1")
        await e1.release_unanswered()
        raw = e1.claims.redis
        assert await raw.get("cc:call-claim:A") is None and await raw.get("cc:agent-claim:1001") is None
        assert await raw.get("cc:call-claim:B") == "e1:B/1" and await raw.get("cc:agent-claim:1002") == "e1:B/1"
        assert await e2.claim("A/2", "A", "2001") == OURS
        assert await e2.claim("B/2", "B", "2002") == CALL_TAKEN
        assert await e2.claim("C/1", "C", "1002") == AGENT_TAKEN
        await e1.release("B/1")                 # the conversation's end gives it back too
        assert await e2.claim("B/2", "B", "2002") == OURS
    two_engines(redis_server, scenario)


# ---------------------------------------------------------------------- the registry of waiting calls
T0 = 1_700_000_000.125  # enqueue times with a fraction: written and read back to the last digit


async def _queues(offers: SharedOffers) -> dict[str, list[str]] | None:
    """The registry's waiting call ids by queue, read straight from Redis (None: Redis away)."""
    try:
        snapshot = await offers.claims.snapshot()
    except SharedStateUnavailable:
        return None
    return {queue: [call.call_id for call in calls] for queue, calls in snapshot.waiting.items()}


async def _listed(offers: SharedOffers, wanted: dict[str, list[str]]) -> bool:
    return await _queues(offers) == wanted


async def _entry(offers: SharedOffers, call_id: str):
    """The registry's WaitingCall for ``call_id`` (None if it is not listed)."""
    snapshot = await offers.claims.snapshot()
    found = [call for calls in snapshot.waiting.values() for call in calls if call.call_id == call_id]
    assert len(found) <= 1, f"{call_id} listed {len(found)} times: {snapshot.waiting}"
    return found[0] if found else None


def _writes_done(offers: SharedOffers) -> bool:
    """The immediate writes call_waiting/call_left spawned have all finished."""
    return not offers._writes._tasks


def test_a_waiting_call_is_written_at_once_taken_out_when_it_leaves_and_listed_by_every_engine(redis_server):
    async def scenario(e1, e2):
        e1.call_waiting("A", "sales", 3, T0)
        e1.call_waiting("B", "support", 0, T0 + 1)
        e1.call_waiting("C", "sales", 1, T0 + 2)
        # no refresh of e1 anywhere here: these are the immediate writes
        await wait_until(lambda: _listed(e2, {"sales": ["A", "C"], "support": ["B"]}), seconds=5,
                         what="e1's waiting calls written")
        assert await _entry(e2, "A") == WaitingCall("A", "sales", 3, T0, "e1")
        assert await _entry(e2, "B") == WaitingCall("B", "support", 0, T0 + 1, "e1")
        raw = e2.claims.redis
        assert await raw.hget("cc:call:A", "enqueued_at") == repr(T0)
        assert await raw.zscore("cc:queue:sales", "A") == T0
        assert e2.view()["waiting"] == {}                     # as of e2's last refresh: none yet
        await e2.refresh()
        assert e2.view()["waiting"] == {
            "sales": [{"call_id": "A", "priority": 3, "enqueued_at": T0, "engine": "e1"},
                      {"call_id": "C", "priority": 1, "enqueued_at": T0 + 2, "engine": "e1"}],
            "support": [{"call_id": "B", "priority": 0, "enqueued_at": T0 + 1, "engine": "e1"}]}
        e1.call_left("A")
        e1.call_left("B")
        e1.call_left("nobody")                                 # never waited here: nothing to write
        await wait_until(lambda: _listed(e2, {"sales": ["C"]}), seconds=5, what="A and B taken out")
        assert await raw.exists("cc:call:A", "cc:call:B") == 0
        assert await raw.smembers("cc:queues") == {"sales"}   # nobody waits in support any more
        assert e2.view()["waiting"]["support"]                 # e2 still shows its last refresh...
        await e2.refresh()
        assert e2.view()["waiting"] == {                       # ...until the next one
            "sales": [{"call_id": "C", "priority": 1, "enqueued_at": T0 + 2, "engine": "e1"}]}
    two_engines(redis_server, scenario)


def test_the_refresh_takes_out_its_own_stale_entries_and_leaves_other_engines_entries_alone(redis_server):
    async def scenario(e1, e2):
        e1.call_waiting("A", "sales", 0, T0)
        e1.call_waiting("B", "sales", 0, T0 + 1)
        await wait_until(lambda: _listed(e1, {"sales": ["A", "B"]}), seconds=5, what="A and B written")
        e1.call_left("A")
        await wait_until(lambda: _listed(e1, {"sales": ["B"]}), seconds=5, what="A taken out")
        # writes landing out of order: e1's earlier "A waits" lands after its "A left"
        await e1.claims.call_waiting("A", "sales", priority=0, enqueued_at=T0)
        await e1.claims.call_waiting("Z", "support", priority=0, enqueued_at=T0 + 3)  # a call e1 never had
        # e2's own waiting calls, which e1 does not have
        e2.call_waiting("C", "sales", 2, T0 + 2)
        e2.call_waiting("D", "support", 0, T0 + 4)
        await wait_until(lambda: _listed(e1, {"sales": ["A", "B", "C"], "support": ["Z", "D"]}), seconds=5,
                         what="e2's calls written")
        await e1.refresh()
        assert await _queues(e1) == {"sales": ["B", "C"], "support": ["D"]}
        assert await _entry(e1, "B") == WaitingCall("B", "sales", 0, T0 + 1, "e1")
        assert await _entry(e1, "C") == WaitingCall("C", "sales", 2, T0 + 2, "e2")
        assert await _entry(e1, "D") == WaitingCall("D", "support", 0, T0 + 4, "e2")
        await e1.refresh()                                    # nothing more to put right
        assert await _queues(e1) == {"sales": ["B", "C"], "support": ["D"]}
        assert e1.view()["waiting"] == {
            "sales": [{"call_id": "B", "priority": 0, "enqueued_at": T0 + 1, "engine": "e1"},
                      {"call_id": "C", "priority": 2, "enqueued_at": T0 + 2, "engine": "e2"}],
            "support": [{"call_id": "D", "priority": 0, "enqueued_at": T0 + 4, "engine": "e2"}]}
        await e2.refresh()                                    # and e2 keeps its own
        assert await _queues(e1) == {"sales": ["B", "C"], "support": ["D"]}
    two_engines(redis_server, scenario)


def test_redis_back_empty_the_refresh_writes_the_waiting_calls_back_each_in_its_current_queue(redis_server):
    async def scenario(e1, e2):
        e1.call_waiting("A", "sales", 2, T0)
        e1.call_waiting("B", "support", 0, T0 + 1)
        await wait_until(lambda: _listed(e1, {"sales": ["A"], "support": ["B"]}), seconds=5,
                         what="A and B written")
        redis_server.restart()                                # the same port, and empty
        raw = e2.claims.redis
        assert await raw.dbsize() == 0
        await e1.refresh()
        assert await _queues(e2) == {"sales": ["A"], "support": ["B"]}
        assert await _entry(e2, "A") == WaitingCall("A", "sales", 2, T0, "e1")
        assert await _entry(e2, "B") == WaitingCall("B", "support", 0, T0 + 1, "e1")
        # B moved to sales; its immediate write lands, then an earlier write of "B in support" late
        e1.call_waiting("B", "sales", 0, T0 + 1)
        await wait_until(lambda: _listed(e2, {"sales": ["A", "B"]}), seconds=5, what="B moved")
        await e1.claims.call_waiting("B", "support", priority=0, enqueued_at=T0 + 1)
        assert await _queues(e2) == {"sales": ["A"], "support": ["B"]}
        await e1.refresh()
        assert await _queues(e2) == {"sales": ["A", "B"]}    # only in the queue it waits in now
        assert await raw.smembers("cc:queues") == {"sales"}
        assert await raw.zscore("cc:queue:support", "B") is None
        assert await _entry(e2, "B") == WaitingCall("B", "sales", 0, T0 + 1, "e1")
        await e2.refresh()
        assert e2.view()["waiting"] == {
            "sales": [{"call_id": "A", "priority": 2, "enqueued_at": T0, "engine": "e1"},
                      {"call_id": "B", "priority": 0, "enqueued_at": T0 + 1, "engine": "e1"}]}
    two_engines(redis_server, scenario)


def test_redis_away_waiting_calls_are_noted_without_error_and_the_next_refresh_puts_the_registry_right(
        redis_server, caplog):
    async def scenario(e1, e2):
        e1.call_waiting("A", "sales", 0, T0)
        e1.call_waiting("B", "sales", 0, T0 + 1)
        await e1.refresh()
        await wait_until(lambda: _listed(e2, {"sales": ["A", "B"]}), seconds=5, what="A and B written")
        assert e1.available is True
        redis_server.kill()
        caplog.clear()
        e1.call_waiting("C", "support", 5, T0 + 2)            # none of these raises
        e1.call_left("A")
        e1.call_waiting("B", "support", 1, T0 + 1)            # moved while Redis is away
        await wait_until(lambda: _writes_done(e1), seconds=10, what="the immediate writes giving up")
        assert e1.available is False                          # each write noticed Redis away...
        assert any("shared store unavailable" in record.getMessage() for record in caplog.records)
        assert not [record for record in caplog.records if record.name == "callcenter.runtime"]  # ...and coped
        redis_server.restart()
        # what a Redis that kept its data (AOF) comes back with: the registry as it was before
        await e1.claims.call_waiting("A", "sales", priority=0, enqueued_at=T0)
        await e1.claims.call_waiting("B", "sales", priority=0, enqueued_at=T0 + 1)
        await e2.claims.call_waiting("E", "sales", priority=0, enqueued_at=T0 + 9)  # e2's own call
        await e1.refresh()
        assert e1.available is True
        assert await _queues(e2) == {"sales": ["E"], "support": ["B", "C"]}
        assert await _entry(e2, "B") == WaitingCall("B", "support", 1, T0 + 1, "e1")
        assert await _entry(e2, "C") == WaitingCall("C", "support", 5, T0 + 2, "e1")
        assert await _entry(e2, "E") == WaitingCall("E", "sales", 0, T0 + 9, "e2")
    two_engines(redis_server, scenario)


def test_the_refresh_repairs_a_stale_priority_or_enqueue_time_and_shows_the_repaired_registry(redis_server):
    async def scenario(e1, e2):
        e1.call_waiting("A", "sales", 2, T0)
        await wait_until(lambda: _listed(e1, {"sales": ["A"]}), seconds=5, what="A written")
        await e1.claims.call_waiting("A", "sales", priority=9, enqueued_at=T0 + 50)  # a late, stale write
        redis_server.restart()                                # and B's entry lost with the rest
        e1.call_waiting("B", "support", 1, T0 + 1)
        await wait_until(lambda: _writes_done(e1), seconds=5, what="B's write tried")
        await e1.claims.call_waiting("A", "sales", priority=9, enqueued_at=T0 + 50)
        await e1.refresh()
        assert await _entry(e1, "A") == WaitingCall("A", "sales", 2, T0, "e1")
        # the view is the registry as this refresh left it, not as it found it
        assert e1.view()["waiting"] == {
            "sales": [{"call_id": "A", "priority": 2, "enqueued_at": T0, "engine": "e1"}],
            "support": [{"call_id": "B", "priority": 1, "enqueued_at": T0 + 1, "engine": "e1"}]}
    two_engines(redis_server, scenario)
