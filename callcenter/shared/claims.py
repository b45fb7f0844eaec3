"""Offer claims and the registry of live calls and agents, shared by engines through Redis.

Owns two things:

- **Claims.** Before an engine rings an agent for a call it claims the pair for its offer. One Lua
  script decides and writes, so two engines can never offer one agent two calls nor one call to
  two agents. Claims carry a TTL: a dead engine's claims free up on their own; ``connected``
  extends them for the length of a conversation, ``release`` gives them back.
- **The registry.** Waiting calls per queue and agents with their state, written atomically, read
  back as one ``SharedSnapshot`` and written back whole with ``rebuild`` when Redis comes back
  empty after a loss.

Keys (``<p>`` is the prefix, default ``cc:``):

    <p>call-claim:<call_id>    string  offer id holding the call            (PX ttl)
    <p>agent-claim:<agent_id>  string  offer id holding the agent           (PX ttl)
    <p>offer:<offer_id>        hash    call, agent, engine, at              (PX ttl)
    <p>queues                  set     names of queues with waiting calls
    <p>queue:<name>            zset    call ids, score = enqueue time (epoch seconds)
    <p>call:<call_id>          hash    queue, priority, enqueued_at, engine[, caller_channel]
    <p>agents                  set     agent ids in the registry
    <p>agent:<agent_id>        hash    state, queues (comma list), engine, since
    <p>engine:<engine_id>      string  when the engine last said it is alive  (PX ttl)
    <p>once:<action>           string  the engine that did a one-off action   (PX ttl)

Scripts find some keys only while they run (the queue a call waits in, the registry's members)
and build those names from the prefix: correct on one Redis, and on Redis Cluster when the prefix
has a hash tag, which multi-key atomicity needs there anyway.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis.asyncio

from callcenter.shared import DEFAULT_PREFIX, as_text, redis_operation

log = logging.getLogger(__name__)

CLAIM_REASONS = ("claimed", "already_ours", "call_taken", "agent_taken")

# KEYS: call-claim, agent-claim, offer hash. ARGV: offer, call, agent, engine, at, ttl ms, prefix.
# The holder's engine is read from the holder's own offer hash (named from the prefix).
CLAIM_SCRIPT = """
local offer = ARGV[1]
local call_holder = redis.call('GET', KEYS[1])
local agent_holder = redis.call('GET', KEYS[2])
local function engine_of(holder)
  return redis.call('HGET', ARGV[7] .. 'offer:' .. holder, 'engine')
end
if call_holder and call_holder ~= offer then
  return {'call_taken', call_holder, engine_of(call_holder)}
end
if agent_holder and agent_holder ~= offer then
  return {'agent_taken', agent_holder, engine_of(agent_holder)}
end
local named = redis.call('HMGET', KEYS[3], 'call', 'agent', 'engine')
if named[1] and (named[1] ~= ARGV[2] or named[2] ~= ARGV[3]) then
  return {'offer_reused', offer, named[3]}
end
if call_holder == offer and agent_holder == offer then
  return {'already_ours', offer, named[3]}
end
redis.call('SET', KEYS[1], offer, 'PX', ARGV[6])
redis.call('SET', KEYS[2], offer, 'PX', ARGV[6])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'call', ARGV[2], 'agent', ARGV[3], 'engine', ARGV[4], 'at', ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {'claimed', offer, ARGV[4]}
"""

# KEYS: call-claim, agent-claim, offer hash. ARGV: offer, ttl ms. Only while both claims still
# name the offer: an expired claim that another offer took since stays the other offer's.
EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 1
"""

# KEYS: call-claim, agent-claim, offer hash. ARGV: offer. Compare-and-delete: a claim key that
# names another offer now is that offer's and stays.
RELEASE_SCRIPT = """
local released = 0
for i = 1, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then released = released + redis.call('DEL', KEYS[i]) end
end
redis.call('DEL', KEYS[3])
return released
"""

# KEYS: a call-claim or agent-claim key. ARGV: prefix. The holder and its offer hash, read together.
HOLDER_SCRIPT = """
local offer = redis.call('GET', KEYS[1])
if not offer then return false end
return {offer, redis.call('HGETALL', ARGV[1] .. 'offer:' .. offer)}
"""

# Shared by the registry scripts: take a call out of the queue it waits in, and drop the queue
# from the queue set once nobody waits in it. KEYS[2] of every script using it is the queue set.
LEAVE_QUEUE_LUA = """
local function leave_queue(prefix, queue, call_id)
  local queue_key = prefix .. 'queue:' .. queue
  redis.call('ZREM', queue_key, call_id)
  if redis.call('ZCARD', queue_key) == 0 then redis.call('SREM', KEYS[2], queue) end
end
"""

# KEYS: call hash, queue set, queue zset. ARGV: prefix, call id, queue, enqueue time, then the
# hash's field/value pairs. A call already waiting elsewhere moves (a transfer): never in two queues.
CALL_WAITING_SCRIPT = LEAVE_QUEUE_LUA + """
local previous = redis.call('HGET', KEYS[1], 'queue')
if previous and previous ~= ARGV[3] then leave_queue(ARGV[1], previous, ARGV[2]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
return 1
"""

# KEYS: call hash, queue set. ARGV: prefix, call id.
CALL_LEFT_SCRIPT = LEAVE_QUEUE_LUA + """
local queue = redis.call('HGET', KEYS[1], 'queue')
if not queue then return 0 end
leave_queue(ARGV[1], queue, ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: agent hash, agent set. ARGV: agent id, engine, prefix, then the hash's field/value pairs.
# An entry another live engine holds for an agent it has logged in is not overwritten: its engine's
# name is returned instead.
AGENT_STATE_SCRIPT = """
local holder = redis.call('HGET', KEYS[1], 'engine')
if holder and holder ~= ARGV[2] and redis.call('HGET', KEYS[1], 'state') ~= 'logged_out'
   and redis.call('EXISTS', ARGV[3] .. 'engine:' .. holder) == 1 then
  return holder
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SADD', KEYS[2], ARGV[1])
return false
"""

# KEYS: agent hash, agent set. ARGV: agent id, engine. Only the engine that wrote the entry removes it.
AGENT_LEFT_SCRIPT = """
local engine = redis.call('HGET', KEYS[1], 'engine')
if engine and engine ~= ARGV[2] then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS: queue set, agent set. ARGV: prefix. One consistent read of the whole registry.
SNAPSHOT_SCRIPT = """
local prefix = ARGV[1]
local queues = {}
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local calls = {}
  for _, call_id in ipairs(redis.call('ZRANGE', prefix .. 'queue:' .. queue, 0, -1)) do
    table.insert(calls, {call_id, redis.call('HGETALL', prefix .. 'call:' .. call_id)})
  end
  table.insert(queues, {queue, calls})
end
local agents = {}
for _, agent_id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  table.insert(agents, {agent_id, redis.call('HGETALL', prefix .. 'agent:' .. agent_id)})
end
return {queues, agents}
"""

# KEYS: queue set, agent set. ARGV: prefix, JSON {"calls": [{id, queue, score, fields}],
# "agents": [{id, fields}]} with every value a string (Lua numbers would lose digits).
REBUILD_SCRIPT = """
local prefix = ARGV[1]
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local queue_key = prefix .. 'queue:' .. queue
  for _, call_id in ipairs(redis.call('ZRANGE', queue_key, 0, -1)) do
    redis.call('DEL', prefix .. 'call:' .. call_id)
  end
  redis.call('DEL', queue_key)
end
for _, agent_id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', prefix .. 'agent:' .. agent_id)
end
redis.call('DEL', KEYS[1], KEYS[2])
local wanted = cjson.decode(ARGV[2])
for _, call in ipairs(wanted.calls) do
  redis.call('ZADD', prefix .. 'queue:' .. call.queue, call.score, call.id)
  redis.call('SADD', KEYS[1], call.queue)
  redis.call('HSET', prefix .. 'call:' .. call.id, unpack(call.fields))
end
for _, agent in ipairs(wanted.agents) do
  redis.call('SADD', KEYS[2], agent.id)
  redis.call('HSET', prefix .. 'agent:' .. agent.id, unpack(agent.fields))
end
return #wanted.calls + #wanted.agents
"""


class AgentHeldElsewhere(Exception):
    """The agent is logged in on another live engine, whose registry entry stands."""

    def __init__(self, agent_id: str, engine: str):
        super().__init__(f"agent {agent_id} is logged in on engine {engine}")
        self.agent_id = agent_id
        self.engine = engine


@dataclass(frozen=True)
class Claim:
    """The answer to a claim. ``holder_*`` name the offer holding the call or agent (this offer
    when ``ok``); ``holder_engine`` is None if that offer's record expired in the meantime."""
    ok: bool
    holder_offer: str | None
    holder_engine: str | None
    reason: str  # one of CLAIM_REASONS


@dataclass(frozen=True)
class OfferHolder:
    """The offer holding a call or an agent, as its record says (None fields: the record expired
    while the claim key had not yet)."""
    offer_id: str
    call_id: str | None
    agent_id: str | None
    engine: str | None
    at: float | None


@dataclass(frozen=True)
class WaitingCall:
    call_id: str
    queue: str
    priority: int
    enqueued_at: float  # epoch seconds; the order within the queue
    engine: str
    caller_channel: str | None = None


@dataclass(frozen=True)
class AgentEntry:
    agent_id: str
    state: str
    queues: tuple[str, ...]
    engine: str
    since: float  # epoch seconds the agent entered ``state``


@dataclass(frozen=True)
class SharedSnapshot:
    """The registry at one instant: waiting calls by queue, oldest first, and agents by id."""
    waiting: dict[str, list[WaitingCall]]
    agents: dict[str, AgentEntry]


def _ttl_ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError(f"a claim's ttl must be positive seconds, not {ttl!r}")
    return max(1, round(ttl * 1000))


def _pairs(flat: Sequence) -> dict[str, str]:
    """HGETALL's flat [field, value, ...] reply (as scripts return it) as a dict of str."""
    return {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


def _call_fields(call: WaitingCall) -> dict[str, str]:
    # repr keeps every digit of a float: the score and the hash give back the same enqueue time
    fields = {"queue": call.queue, "priority": str(call.priority), "enqueued_at": repr(call.enqueued_at),
              "engine": call.engine}
    if call.caller_channel is not None:
        fields["caller_channel"] = call.caller_channel
    return fields


def _call_from(call_id: str, fields: dict[str, str]) -> WaitingCall:
    return WaitingCall(call_id, fields["queue"], int(fields["priority"]), float(fields["enqueued_at"]),
                       fields["engine"], fields.get("caller_channel"))


def _agent_fields(agent: AgentEntry) -> dict[str, str]:
    return {"state": agent.state, "queues": ",".join(agent.queues), "engine": agent.engine,
            "since": repr(agent.since)}


def _agent_from(agent_id: str, fields: dict[str, str]) -> AgentEntry:
    return AgentEntry(agent_id, fields["state"], tuple(q for q in fields["queues"].split(",") if q),
                      fields["engine"], float(fields["since"]))


class RedisClaims:
    """Claims and registry writes of one engine (``engine_id``) on a shared Redis. Every method
    raises SharedStateUnavailable, and only that, when Redis cannot be reached."""

    def __init__(self, redis: redis.asyncio.Redis, *, prefix: str = DEFAULT_PREFIX, engine_id: str,
                 clock: Callable[[], float] = time.time):
        if not engine_id:
            raise ValueError("engine_id must name the engine")
        self.redis = redis
        self.prefix = prefix
        self.engine_id = engine_id
        self.clock = clock
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._extend = redis.register_script(EXTEND_SCRIPT)
        self._release = redis.register_script(RELEASE_SCRIPT)
        self._holder = redis.register_script(HOLDER_SCRIPT)
        self._call_waiting = redis.register_script(CALL_WAITING_SCRIPT)
        self._call_left = redis.register_script(CALL_LEFT_SCRIPT)
        self._snapshot = redis.register_script(SNAPSHOT_SCRIPT)
        self._rebuild = redis.register_script(REBUILD_SCRIPT)
        self._agent_left = redis.register_script(AGENT_LEFT_SCRIPT)
        self._agent_state = redis.register_script(AGENT_STATE_SCRIPT)
        # (call, agent) of the offers this engine claimed and has not released: release and
        # connected still find the claim keys when the offer's record has expired or was lost,
        # and then compare-and-delete decides, never the record.
        self._own_offers: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ key names
    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _claim_keys(self, offer_id: str, call_id: str, agent_id: str) -> list[str]:
        return [self._key("call-claim", call_id), self._key("agent-claim", agent_id), self._key("offer", offer_id)]

    # ------------------------------------------------------------------ claims
    @redis_operation
    async def claim(self, offer_id: str, call_id: str, agent_id: str, ttl: float) -> Claim:
        """Claim ``call_id`` and ``agent_id`` for ``offer_id`` for ``ttl`` seconds, both or
        neither. Claiming again an offer that holds both is a success ("already_ours"); reusing
        an offer id for another call or agent is a ValueError."""
        reason, holder_offer, holder_engine = await self._claim(
            keys=self._claim_keys(offer_id, call_id, agent_id),
            args=[offer_id, call_id, agent_id, self.engine_id, repr(self.clock()), _ttl_ms(ttl), self.prefix])
        reason = as_text(reason)
        if reason == "offer_reused":
            raise ValueError(f"offer {offer_id} is already a claim for another call or agent")
        claim = Claim(reason in ("claimed", "already_ours"), as_text(holder_offer), as_text(holder_engine), reason)
        if claim.ok:
            self._own_offers[offer_id] = (call_id, agent_id)
        else:
            log.debug("claim of %s (call %s, agent %s) refused: %s by offer %s of engine %s",
                      offer_id, call_id, agent_id, reason, claim.holder_offer, claim.holder_engine)
        return claim

    async def _offer_keys(self, offer_id: str) -> list[str] | None:
        """The three keys of an offer: from this engine's memory, else from the offer's record."""
        pair = self._own_offers.get(offer_id)
        if pair is None:
            call_id, agent_id = await self.redis.hmget(self._key("offer", offer_id), ["call", "agent"])
            if call_id is None or agent_id is None:
                return None
            pair = (as_text(call_id), as_text(agent_id))
        return self._claim_keys(offer_id, *pair)

    @redis_operation
    async def connected(self, offer_id: str, ttl: float) -> bool:
        """The call was answered: keep the offer's claims ``ttl`` seconds from now (a conversation
        outlives a ring). False, and nothing changed, if they no longer name this offer."""
        keys = await self._offer_keys(offer_id)
        if keys is None:
            return False
        return bool(await self._extend(keys=keys, args=[offer_id, _ttl_ms(ttl)]))

    @redis_operation
    async def release(self, offer_id: str) -> bool:
        """Give back the offer's claims, each only if it still names this offer. True if at
        least one was still held."""
        keys = await self._offer_keys(offer_id)
        self._own_offers.pop(offer_id, None)
        if keys is None:
            return False
        return bool(await self._release(keys=keys, args=[offer_id]))

    async def _holder_of(self, claim_key: str) -> OfferHolder | None:
        reply = await self._holder(keys=[claim_key], args=[self.prefix])
        if not reply:
            return None
        record = _pairs(reply[1])
        return OfferHolder(as_text(reply[0]), record.get("call"), record.get("agent"), record.get("engine"),
                           float(record["at"]) if "at" in record else None)

    @redis_operation
    async def holder_of_call(self, call_id: str) -> OfferHolder | None:
        return await self._holder_of(self._key("call-claim", call_id))

    @redis_operation
    async def holder_of_agent(self, agent_id: str) -> OfferHolder | None:
        return await self._holder_of(self._key("agent-claim", agent_id))

    @redis_operation
    async def once(self, action: str, ttl: float) -> bool:
        """True if this engine is the first to ask for ``action`` within ``ttl`` seconds."""
        return bool(await self.redis.set(self._key("once", action), self.engine_id, nx=True, px=_ttl_ms(ttl)))

    # ------------------------------------------------------------------ engines
    @redis_operation
    async def engine_alive(self, ttl: float) -> None:
        """This engine is alive for the next ``ttl`` seconds (renewed well before they pass)."""
        await self.redis.set(self._key("engine", self.engine_id), repr(self.clock()), px=_ttl_ms(ttl))

    @redis_operation
    async def engines_alive(self, engines: Iterable[str]) -> set[str]:
        """Which of ``engines`` have said they are alive within their ttl."""
        names = sorted(set(engines))
        if not names:
            return set()
        present = await self.redis.mget([self._key("engine", name) for name in names])
        return {name for name, value in zip(names, present) if value is not None}

    # ------------------------------------------------------------------ registry
    @redis_operation
    async def call_waiting(self, call_id: str, queue: str, *, priority: int = 0, enqueued_at: float | None = None,
                           caller_channel: str | None = None) -> WaitingCall:
        """Record that ``call_id`` waits in ``queue`` (moving it if it waited in another)."""
        call = WaitingCall(call_id, queue, priority, self.clock() if enqueued_at is None else enqueued_at,
                           self.engine_id, caller_channel)
        await self._call_waiting(
            keys=[self._key("call", call_id), self._key("queues"), self._key("queue", queue)],
            args=[self.prefix, call_id, queue, repr(call.enqueued_at), *_flat(_call_fields(call))])
        return call

    @redis_operation
    async def call_left(self, call_id: str) -> bool:
        """The call no longer waits (offered, answered, abandoned). False if it was not waiting."""
        return bool(await self._call_left(keys=[self._key("call", call_id), self._key("queues")],
                                          args=[self.prefix, call_id]))

    @redis_operation
    async def agent_state(self, agent_id: str, state: str, queues: Iterable[str] = (), *,
                          since: float | None = None) -> AgentEntry:
        """Record the agent's state and queues, as this engine sees them. AgentHeldElsewhere if
        another live engine has the agent logged in (its entry is kept)."""
        queues = tuple(queues)
        if any("," in queue for queue in queues):
            raise ValueError(f"queue names are stored as a comma list and cannot contain commas: {queues}")
        agent = AgentEntry(agent_id, state, queues, self.engine_id, self.clock() if since is None else since)
        holder = await self._agent_state(keys=[self._key("agent", agent_id), self._key("agents")],
                                         args=[agent_id, self.engine_id, self.prefix, *_flat(_agent_fields(agent))])
        if holder:
            # Logged in on another live engine first: that entry stands (this engine's refresh
            # finds the agent there and logs them out here).
            log.warning("agent %s is logged in on engine %s: not registered for engine %s",
                        agent_id, as_text(holder), self.engine_id)
            raise AgentHeldElsewhere(agent_id, as_text(holder))
        return agent

    @redis_operation
    async def agent_left(self, agent_id: str) -> bool:
        """Take the agent out of the registry (logged out for good), if this engine wrote the
        entry: another engine's entry for the agent stays. False if nothing was taken out."""
        return bool(await self._agent_left(keys=[self._key("agent", agent_id), self._key("agents")],
                                           args=[agent_id, self.engine_id]))

    @redis_operation
    async def snapshot(self) -> SharedSnapshot:
        queues_reply, agents_reply = await self._snapshot(keys=[self._key("queues"), self._key("agents")],
                                                          args=[self.prefix])
        waiting: dict[str, list[WaitingCall]] = {}
        for queue, calls in sorted(queues_reply, key=lambda entry: as_text(entry[0])):
            # a member whose record is gone is skipped: only a hand-made edit can leave one
            waiting[as_text(queue)] = [_call_from(as_text(call_id), _pairs(fields))
                                       for call_id, fields in calls if fields]
        agents = {as_text(agent_id): _agent_from(as_text(agent_id), _pairs(fields))
                  for agent_id, fields in sorted(agents_reply, key=lambda entry: as_text(entry[0])) if fields}
        return SharedSnapshot(waiting, agents)

    @redis_operation
    async def rebuild(self, snapshot: SharedSnapshot) -> None:
        """Replace the whole registry with ``snapshot`` in one step (after Redis came back empty,
        the engine writes back what it knows). Claims are not part of it: they expire anyway."""
        wanted = {
            "calls": [{"id": call.call_id, "queue": call.queue, "score": repr(call.enqueued_at),
                       "fields": _flat(_call_fields(call))}
                      for calls in snapshot.waiting.values() for call in calls],
            "agents": [{"id": agent.agent_id, "fields": _flat(_agent_fields(agent))}
                       for agent in snapshot.agents.values()],
        }
        written = await self._rebuild(keys=[self._key("queues"), self._key("agents")],
                                      args=[self.prefix, json.dumps(wanted)])
        log.info("shared registry rebuilt by engine %s: %d entries", self.engine_id, written)
