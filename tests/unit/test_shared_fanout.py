"""Live fan-out against a real redis-server: each engine hears the others' messages, in order,
never its own, and hears them again after Redis came back."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from callcenter.shared import SharedStateUnavailable, connect
from callcenter.shared.fanout import LiveFanout
from tests.redis_server import run_bounded, wait_until

CHANNEL = "cc:live"



async def receive(fanout: LiveFanout, count: int) -> list[dict]:
    """The next ``count`` messages ``fanout`` hears."""
    heard = []
    async with aclosing(fanout.listen()) as messages:
        async for message in messages:
            heard.append(message)
            if len(heard) == count:
                return heard
    return heard


async def subscribers(client, count: int) -> None:
    async def subscribed() -> bool:
        return (await client.pubsub_numsub(CHANNEL))[0][1] == count
    await wait_until(subscribed, what=f"{count} subscriber(s) on {CHANNEL}")


def test_each_engine_hears_only_the_others_messages_in_order(redis_server) -> None:
    async def scenario():
        clients = [connect(redis_server.url) for _ in range(2)]
        a, b = (LiveFanout(client, engine_id=name) for client, name in zip(clients, ("engine-a", "engine-b")))
        try:
            heard_by_a = asyncio.create_task(receive(a, 40))
            heard_by_b = asyncio.create_task(receive(b, 40))
            await subscribers(clients[0], 2)

            async def send(fanout: LiveFanout, count: int) -> None:
                for n in range(count):
                    await fanout.publish("agent_state", {"n": n, "agent": "1001"})
            # both send at once, so each listener's stream mixes its own messages with the other's
            await asyncio.gather(send(a, 40), send(b, 40))
            return await heard_by_a, await heard_by_b
        finally:
            for client in clients:
                await client.aclose()

    heard_by_a, heard_by_b = run_bounded(scenario())
    assert [(m["engine"], m["kind"], m["payload"]["n"]) for m in heard_by_a] == [
        ("engine-b", "agent_state", n) for n in range(40)]
    assert [(m["engine"], m["payload"]["n"]) for m in heard_by_b] == [("engine-a", n) for n in range(40)]
    assert all(isinstance(m["sent_at"], float) for m in heard_by_a + heard_by_b)


def test_a_message_that_is_not_a_fanout_message_is_skipped(redis_server) -> None:
    async def scenario():
        client = connect(redis_server.url)
        listener, sender = LiveFanout(client, engine_id="engine-a"), LiveFanout(client, engine_id="engine-b")
        try:
            heard = asyncio.create_task(receive(listener, 1))
            await subscribers(client, 1)
            for foreign in ("not json", "[1, 2]", '{"kind": "no sender"}'):
                await client.publish(CHANNEL, foreign)
            await sender.publish("queue", {"waiting": 3})
            return await heard
        finally:
            await client.aclose()

    assert [(m["engine"], m["payload"]) for m in run_bounded(scenario())] == [("engine-b", {"waiting": 3})]


def test_listening_resumes_after_redis_comes_back(redis_server) -> None:
    async def scenario():
        clients = [connect(redis_server.url) for _ in range(2)]
        listener = LiveFanout(clients[0], engine_id="engine-a", retry_delay=0.05, max_retry_delay=0.4)
        sender = LiveFanout(clients[1], engine_id="engine-b")
        try:
            heard = asyncio.create_task(receive(listener, 2))
            await subscribers(clients[1], 1)
            await sender.publish("before", {})
            redis_server.kill()
            with pytest.raises(SharedStateUnavailable):
                await sender.publish("lost", {})
            await asyncio.sleep(0.5)  # the listener notices, and keeps trying
            assert not heard.done()
            redis_server.restart()
            await subscribers(clients[1], 1)  # subscribed again, by itself
            await sender.publish("after", {})
            return await heard
        finally:
            for client in clients:
                await client.aclose()

    assert [m["kind"] for m in run_bounded(scenario())] == ["before", "after"]


def test_listening_stops_when_cancelled_while_messages_flow(redis_server) -> None:
    async def flood(sender: LiveFanout) -> None:
        while True:
            await sender.publish("queue", {"waiting": 1})

    async def stops_within(seconds: float, listener: LiveFanout) -> bool:
        listening = asyncio.create_task(receive(listener, 10**9))
        await asyncio.sleep(0.05)
        listening.cancel()  # somewhere in its round trips to Redis
        done, _ = await asyncio.wait([listening], timeout=seconds)
        while not listening.done():  # a loop that ignored it: stop it all the same, to report it
            listening.cancel()
            await asyncio.sleep(0.01)
        return bool(done)

    async def scenario():
        clients = [connect(redis_server.url) for _ in range(2)]
        flooding = asyncio.create_task(flood(LiveFanout(clients[1], engine_id="engine-b")))
        try:
            listener = LiveFanout(clients[0], engine_id="engine-a")
            return [await stops_within(1.0, listener) for _ in range(10)]
        finally:
            while not flooding.done():  # the flood is a Redis loop too: cancel until it stops
                flooding.cancel()
                await asyncio.sleep(0.01)
            for client in clients:
                await client.aclose()

    assert run_bounded(scenario()) == [True] * 10
