"""SharedOffers (two engines' side of sharing queues) against a real redis-server: claims won,
refused for a taken call or agent and given back; a connected call's claim kept for the
conversation; one-off actions done once; the agents' registry read by the other engines; and a
Redis that dies (offers go ahead unguarded) and comes back empty (the refresh writes it back)."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from callcenter.shared import SharedStateUnavailable, connect
from callcenter.shared.claims import RedisClaims
from callcenter.shared.offers import AGENT_TAKEN, CALL_TAKEN, OURS, UNGUARDED, SharedOffers
from tests.redis_server import run_bounded, throwaway_redis, wait_until

RING_TTL = 5.0
TALK_TTL = 100.0


@pytest.fixture
def redis_server(tmp_path):
    with throwaway_redis(tmp_path) as server:
        yield server


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
