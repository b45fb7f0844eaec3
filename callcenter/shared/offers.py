"""What the ACD shell asks of the shared store when several engines serve the same queues.

Owns the engine's side of sharing: claiming each offer before the phone rings (so that no two
engines ever ring two agents for one call, or one agent for two calls), keeping a connected
call's claim for the length of the conversation and giving claims back when offers end, doing a
one-off action once across engines (sending a caller to voicemail), and the agents' registry:
each engine writes its own agents' states, and refuses a login of an agent that another live
engine has logged in.

Redis going away never stops a call. A claim that cannot be made is reported as ``unguarded``
and the offer goes ahead (the dialplan's offer check still bridges a caller to one agent only);
once Redis is back, the refresh loop claims those offers again and writes the registry back from
what this engine knows, so a Redis that restarted empty is rebuilt without anyone's help.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from callcenter.runtime import BackgroundTasks
from callcenter.shared import SharedStateUnavailable, raise_if_cancelled
from callcenter.shared.claims import AgentHeldElsewhere, RedisClaims

log = logging.getLogger(__name__)

ENGINE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,23}$")
OURS, CALL_TAKEN, AGENT_TAKEN, UNGUARDED = "ours", "call_taken", "agent_taken", "unguarded"


@dataclass
class _HeldOffer:
    call_id: str
    agent_id: str
    connected: bool = False
    guarded: bool = True  # claimed in Redis (False: made while Redis was away)


class SharedOffers:
    def __init__(self, claims: RedisClaims, *, ring_ttl: float, talk_ttl: float = 4 * 3600,
                 engine_ttl: float = 10.0, refresh_seconds: float = 1.0, clock: Callable[[], float] = time.time):
        if not ENGINE_NAME.match(claims.engine_id):
            raise ValueError(f"engine name {claims.engine_id!r}: a letter, then up to 23 letters, digits, - or _")
        self.claims = claims
        self.engine = claims.engine_id
        self.ring_ttl = ring_ttl  # a claim outlives its ring by this margin (set by the caller)
        self.talk_ttl = talk_ttl
        self.engine_ttl = engine_ttl
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._held: dict[str, _HeldOffer] = {}  # this engine's live offers, by the router's offer id
        self._agents: dict[str, tuple[str, tuple[str, ...]]] = {}  # own agents: state, queues
        self._waiting: dict[str, tuple[str, int, float]] = {}  # waiting calls: queue, priority, enqueued at
        self.waiting_seen: dict[str, list[dict]] = {}  # every engine's waiting calls, by queue (last refresh)
        # agent id -> engine, for agents another live engine has logged in (read each refresh)
        self.elsewhere: dict[str, str] = {}
        self.available: bool | None = None  # Redis answered the last operation (None: not tried yet)
        self.agents_seen: list[dict] = []  # the registry as the last refresh read it (every engine's agents)
        self._writes = BackgroundTasks()
        # Told (agent id, engine) when an own agent turns out to be logged in on another live
        # engine first (both let them in within the same second): the engine logs them out here.
        self.on_agent_elsewhere: Callable[[str, str], None] | None = None

    def _key(self, offer_id: str) -> str:
        """Offer ids are the router's ('call/n'): the engine's name makes them distinct in Redis."""
        return f"{self.engine}:{offer_id}"

    def _unavailable(self, exc: SharedStateUnavailable) -> None:
        if self.available is not False:
            log.warning("shared store unavailable, serving from this engine's own state: %s", exc)
        self.available = False

    def _reached(self) -> None:
        if self.available is False:
            log.info("shared store reachable again")
        self.available = True

    # ------------------------------------------------------------------ offers
    async def claim(self, offer_id: str, call_id: str, agent_id: str) -> str:
        """OURS, CALL_TAKEN, AGENT_TAKEN, or UNGUARDED (Redis away: go ahead, re-claimed later)."""
        try:
            claim = await self.claims.claim(self._key(offer_id), call_id, agent_id, self.ring_ttl)
        except SharedStateUnavailable as exc:
            self._unavailable(exc)
            self._held[offer_id] = _HeldOffer(call_id, agent_id, guarded=False)
            return UNGUARDED
        self._reached()
        if claim.ok:
            self._held[offer_id] = _HeldOffer(call_id, agent_id)
            return OURS
        return CALL_TAKEN if claim.reason == "call_taken" else AGENT_TAKEN

    async def connected(self, offer_id: str) -> None:
        """The offer was answered: its claims last as long as a conversation may."""
        held = self._held.get(offer_id)
        if held is None:
            return
        held.connected = True
        try:
            if not await self.claims.connected(self._key(offer_id), self.talk_ttl):
                held.guarded = False  # expired meanwhile (or Redis restarted): the refresh claims it again
            self._reached()
        except SharedStateUnavailable as exc:
            self._unavailable(exc)
            held.guarded = False

    async def release(self, offer_id: str) -> None:
        """The offer is over (unanswered, withdrawn, or its call ended)."""
        if self._held.pop(offer_id, None) is None:
            return
        try:
            await self.claims.release(self._key(offer_id))
            self._reached()
        except SharedStateUnavailable as exc:
            # the claim expires on its own; until then the call or agent waits at most its TTL
            self._unavailable(exc)

    async def release_unanswered(self) -> None:
        """The engine is stopping: its ringing offers' claims go back now, not at their TTL."""
        for offer_id in [offer_id for offer_id, held in self._held.items() if not held.connected]:
            await self.release(offer_id)

    async def once(self, action: str, ttl: float = 60.0) -> bool:
        """True for the first engine to ask for ``action`` within ``ttl`` seconds (and for every
        engine while Redis is away: better twice than never)."""
        try:
            first = await self.claims.once(action, ttl)
        except SharedStateUnavailable as exc:
            self._unavailable(exc)
            return True
        self._reached()
        return first

    # ------------------------------------------------------------------ agents
    def agent_state(self, agent_id: str, state: str, queues: Iterable[str]) -> None:
        """Note an own agent's state and write it at once (a login elsewhere is refused from
        the other engines' next refresh); the refresh loop writes it again every round."""
        self._agents[agent_id] = (state, tuple(sorted(queues)))
        self._writes.spawn(self._write_agent(agent_id), f"registry {agent_id}")

    async def _write_agent(self, agent_id: str) -> None:
        entry = self._agents.get(agent_id)
        if entry is None:
            return
        try:
            await self._write(agent_id, *entry)
        except SharedStateUnavailable as exc:
            self._unavailable(exc)  # the refresh loop writes it once Redis is back

    async def _write(self, agent_id: str, state: str, queues: tuple[str, ...]) -> None:
        try:
            if state == "logged_out":
                await self.claims.agent_left(agent_id)
                if self._agents.get(agent_id, (None,))[0] == "logged_out":  # not back in meanwhile
                    del self._agents[agent_id]
            else:
                await self.claims.agent_state(agent_id, state, queues)
        except AgentHeldElsewhere as exc:
            self._agents.pop(agent_id, None)
            self.elsewhere[agent_id] = exc.engine
            if self.on_agent_elsewhere is not None:
                self.on_agent_elsewhere(agent_id, exc.engine)

    # ------------------------------------------------------------------ waiting calls
    def call_waiting(self, call_id: str, queue: str, priority: int, enqueued_at: float) -> None:
        """A caller waits in ``queue`` (as this engine sees it): written now, and kept written."""
        self._waiting[call_id] = (queue, priority, enqueued_at)
        self._writes.spawn(self._write_call(call_id), f"registry call {call_id}")

    def call_left(self, call_id: str) -> None:
        """The caller no longer waits (answered, gone, served by another engine)."""
        if self._waiting.pop(call_id, None) is not None:
            self._writes.spawn(self._write_call(call_id), f"registry call {call_id}")

    async def _write_call(self, call_id: str) -> None:
        """Write what is true of the call now (writes may land out of order: the last one
        reads the latest, and the refresh puts any stale entry right)."""
        entry = self._waiting.get(call_id)
        try:
            if entry is None:
                await self.claims.call_left(call_id)
            else:
                queue, priority, enqueued_at = entry
                await self.claims.call_waiting(call_id, queue, priority=priority, enqueued_at=enqueued_at)
        except SharedStateUnavailable as exc:
            self._unavailable(exc)  # the refresh writes the registry again once Redis is back

    async def _sync_waiting(self, registry: dict[str, list]) -> bool:
        """Make the registry's waiting calls agree with this engine's: its own missing or stale
        entries written (Redis came back empty, a write was lost or landed out of order),
        entries it wrote for calls that no longer wait here taken out. True if it wrote.
        (A caller that left, left for every engine: whoever wrote its entry last.)"""
        listed = {call.call_id: call for calls in registry.values() for call in calls}
        wrote = False
        for call_id, (queue, priority, enqueued_at) in list(self._waiting.items()):
            seen = listed.get(call_id)
            if seen is None or (seen.queue, seen.priority, seen.enqueued_at) != (queue, priority, enqueued_at):
                await self.claims.call_waiting(call_id, queue, priority=priority, enqueued_at=enqueued_at)
                wrote = True
        for call_id, call in listed.items():
            if call.engine == self.engine and call_id not in self._waiting:
                await self.claims.call_left(call_id)
                wrote = True
        return wrote

    def logged_in_elsewhere(self, agent_id: str) -> str | None:
        """The live engine that has this agent logged in, if another one does (as of the last refresh)."""
        return self.elsewhere.get(agent_id)

    # ------------------------------------------------------------------ upkeep
    async def refresh(self) -> None:
        """One round of upkeep: say this engine is alive, write its agents, claim again the
        offers made while Redis was away, and read which agents other live engines hold."""
        await self.claims.engine_alive(self.engine_ttl)
        for agent_id, entry in list(self._agents.items()):
            await self._write(agent_id, *entry)
        for offer_id, held in list(self._held.items()):
            if held.guarded:
                continue
            claim = await self.claims.claim(self._key(offer_id), held.call_id, held.agent_id,
                                            self.talk_ttl if held.connected else self.ring_ttl)
            if claim.ok:
                held.guarded = True
            else:
                log.warning("offer %s (call %s, agent %s) made while Redis was away overlaps offer %s of engine %s",
                            offer_id, held.call_id, held.agent_id, claim.holder_offer, claim.holder_engine)
        snapshot = await self.claims.snapshot()
        if await self._sync_waiting(snapshot.waiting):
            snapshot = await self.claims.snapshot()  # the view shows the registry as now repaired
        self.waiting_seen = {queue: [{"call_id": call.call_id, "priority": call.priority,
                                      "enqueued_at": call.enqueued_at, "engine": call.engine} for call in calls]
                             for queue, calls in snapshot.waiting.items()}
        alive = await self.claims.engines_alive({entry.engine for entry in snapshot.agents.values()})
        self.agents_seen = [{"agent_id": entry.agent_id, "state": entry.state, "engine": entry.engine,
                             "queues": list(entry.queues), "since": entry.since,
                             "engine_alive": entry.engine in alive or entry.engine == self.engine}
                            for entry in snapshot.agents.values()]
        self.elsewhere = {agent_id: entry.engine for agent_id, entry in snapshot.agents.items()
                          if entry.engine != self.engine and entry.engine in alive and entry.state != "logged_out"}
        self._reached()

    def view(self) -> dict:
        """The shared state as this engine last saw it, for the API."""
        return {"engine": self.engine, "store_reachable": self.available, "agents": self.agents_seen,
                "waiting": self.waiting_seen}

    async def close(self) -> None:
        await self._writes.close()

    async def run(self) -> None:
        """``refresh`` every ``refresh_seconds`` until cancelled, riding out Redis outages."""
        while True:
            raise_if_cancelled()
            try:
                await self.refresh()
            except SharedStateUnavailable as exc:
                self._unavailable(exc)
                # everything is written again once Redis answers (it may come back empty)
                for held in self._held.values():
                    held.guarded = False
            await asyncio.sleep(self.refresh_seconds)
