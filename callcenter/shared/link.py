"""One engine's link to the others sharing its queues through Redis: builds and runs the parts
(offer claims and agent registry, the event stream into the SQL log, the live fan-out) and is all
the composition root deals with. Engines without ``redis_url`` have no link and serve alone.

What goes where:
- the ACD shell claims every offer through ``offers`` (``AcdShell.share``), and the engine writes
  its agents and waiting callers to the registry and reads it back through ``offers`` too;
- the event log hands its batches to the stream, and this engine's consumer (one group for all
  engines) stores what it reads; a stopping engine drains it before it goes;
- agent control for an agent another engine has logged in is sent to that engine over the
  fan-out, and control sent here by the others is carried out through ``control_agent``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import Engine as SqlEngine

from callcenter.acd.model import RoutingError
from callcenter.events.log import EventLog
from callcenter.runtime import BackgroundTasks
from callcenter.shared import SharedStateUnavailable, connect
from callcenter.shared.claims import RedisClaims
from callcenter.shared.fanout import LiveFanout
from callcenter.shared.offers import SharedOffers
from callcenter.shared.stream import EventStream, StreamConsumer, sql_event_store

log = logging.getLogger(__name__)

# A shared offer's claim outlives its ring by this much (Originate's answer, the hang-up's event).
CLAIM_MARGIN_SECONDS = 15.0
STREAM_DRAIN_SECONDS = 5.0  # a stopping engine waits at most this long to store its last events
FORWARDED_VERBS = ("pause", "unpause", "logout")

# (verb, agent id, reason) -> carried out here; raises for a refusal (logged, not sent back)
ControlAgent = Callable[..., object]
# (call id, queue, priority, sending engine) -> a supervisor's change of a waiting call, applied here
ChangeCall = Callable[[str, str, int, str], None]


class SharedLink:
    def __init__(self, *, url: str, prefix: str, engine_name: str, ring_timeout: float, db: SqlEngine,
                 events: EventLog, control_agent: ControlAgent, change_call: ChangeCall):
        self.engine_name = engine_name
        self.redis = connect(url)
        self.offers = SharedOffers(RedisClaims(self.redis, prefix=prefix, engine_id=engine_name),
                                   ring_ttl=ring_timeout + CLAIM_MARGIN_SECONDS)
        self.offers.on_agent_elsewhere = self._agent_logged_in_elsewhere
        self.events = events
        stream = prefix + "events"
        events.relay = EventStream(self.redis, stream=stream).publish_many
        self._store = sql_event_store(db)
        self.consumer = StreamConsumer(self.redis, self._store_relayed, stream=stream, consumer=engine_name)
        self.fanout = LiveFanout(self.redis, channel=prefix + "live", engine_id=engine_name)
        self.control_agent = control_agent
        self.change_call = change_call
        self._runs: list[asyncio.Task] = []
        self._tasks = BackgroundTasks()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        try:  # who else is logged in where, before the first login here is accepted
            await self.offers.refresh()
        except SharedStateUnavailable as exc:
            log.warning("shared store not reachable at start; serving alone until it is: %s", exc)
        loop = asyncio.get_running_loop()
        self._runs = [loop.create_task(self.offers.run(), name="shared state"),
                      loop.create_task(self.consumer.run(), name="event stream consumer"),
                      loop.create_task(self._follow_fanout(), name="live fan-out")]

    async def stop(self) -> None:
        """After the engine's own work has stopped: claims of unanswered offers go back (the
        other engines offer those callers at once), the last events reach the log, and from
        here on the log stores its events directly."""
        for task in self._runs:
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        await self._tasks.close()
        await self.offers.release_unanswered()
        await self.offers.close()
        try:
            await self.events.flush()
            await asyncio.wait_for(self.consumer.drain(), STREAM_DRAIN_SECONDS)
        except (SharedStateUnavailable, asyncio.TimeoutError) as exc:
            log.warning("event stream not drained at stop (another engine's consumer stores the rest): %r", exc)
        self.events.relay = None
        await self.redis.aclose()

    # ------------------------------------------------------------------ events
    async def _store_relayed(self, records) -> None:
        try:
            await self._store(records)
        except Exception:
            self.events.last_write_ok = False  # /metrics and health show the log is not being written
            raise
        self.events.last_write_ok = True

    # ------------------------------------------------------------------ agents
    def forward(self, verb: str, agent_id: str, reason) -> str | None:
        """Send pause / unpause / logout of an agent another engine has logged in to that
        engine; its name, or None when no other engine has the agent."""
        engine = self.offers.logged_in_elsewhere(agent_id)
        if verb not in FORWARDED_VERBS or engine is None:
            return None
        self._tasks.spawn(self.fanout.publish("agent_control", {"engine": engine, "agent_id": agent_id,
                                                                 "verb": verb, "reason": reason}),
                          f"forward {verb} {agent_id}")
        return engine

    def call_changed(self, call_id: str, queue: str, priority: int) -> None:
        """A supervisor here moved a waiting call or changed its priority: every engine that
        has the caller waiting follows (it would otherwise offer it in its old place)."""
        self._tasks.spawn(self.fanout.publish("call_changed", {"call_id": call_id, "queue": queue,
                                                               "priority": priority}), f"call changed {call_id}")

    async def _follow_fanout(self) -> None:
        """Agent control the other engines send for agents logged in here, and supervisors'
        changes of waiting calls."""
        async for message in self.fanout.listen():
            payload = message.get("payload") or {}
            if message.get("kind") == "call_changed":
                self._apply_call_change(payload, message.get("engine"))
                continue
            if message.get("kind") != "agent_control" or payload.get("engine") != self.engine_name:
                continue
            verb, agent_id, sender = payload.get("verb"), str(payload.get("agent_id")), message.get("engine")
            try:
                if verb not in FORWARDED_VERBS:
                    raise ValueError(f"not an agent control verb: {verb!r}")
                self.control_agent(verb, agent_id, reason=payload.get("reason"))
                log.info("agent %s: %s, sent by engine %s", agent_id, verb, sender)
            except (RoutingError, LookupError, ValueError) as exc:  # LookupError: an agent unknown here
                log.warning("agent control %s for %s from engine %s refused: %s", verb, agent_id, sender, exc)

    def _apply_call_change(self, payload: dict, sender) -> None:
        try:
            self.change_call(str(payload["call_id"]), str(payload["queue"]), int(payload["priority"]), str(sender))
        except (RoutingError, KeyError, TypeError, ValueError) as exc:
            log.warning("change of call %s from engine %s not applied here: %s", payload.get("call_id"), sender, exc)

    def _agent_logged_in_elsewhere(self, agent_id: str, engine: str) -> None:
        """Two engines let one agent in within the same second: the first login stands."""
        log.warning("agent %s was logged in on engine %s first: logging them out here", agent_id, engine)
        try:
            self.control_agent("logout", agent_id)
        except (RoutingError, LookupError) as exc:  # on a call here: that call ends first
            log.warning("agent %s not logged out here: %s", agent_id, exc)
