"""The supervisor's actions on the floor, each checked against the live state, applied through the
router or the dialplan, and written to the audit log (who, what, to whom, when) before it is
answered. Listening, whispering and barging ring the supervisor's own phone into the dialplan's
``cc-spy`` context: the engine never runs ChanSpy (or any application) through AMI itself, and
what cc-spy spies on is set here from the router's state, never taken from a request."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

from callcenter.acd.model import AgentState, CallState, RoutingError
from callcenter.acd.requirements import SkillError, check_skills, unknown_skill_reason
from callcenter.acd.transfer import with_identity
from callcenter.asterisk.ami import AmiError
from callcenter.asterisk.names import supervisor_endpoint
from callcenter.audit import AuditLog
from callcenter.runtime import BackgroundTasks
from callcenter.web.auth import Identity

log = logging.getLogger(__name__)

SPY_MODES = ("listen", "whisper", "barge")
SPY_RING_SECONDS = 30.0


class SupervisorError(Exception):
    """An action that cannot be done now; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str, **details: object):
        super().__init__(message)
        self.status = status
        self.details = details


class SupervisorService:
    def __init__(self, *, router, acd, ami, events, audit: AuditLog,
                 control_agent: Callable[..., str | None], phones: Callable[[], Mapping[str, str]],
                 known_skills: Callable[[], Collection[str] | None], pause_reasons: Collection[str],
                 clock=time.time):
        self.router = router
        self.acd = acd
        self.ami = ami
        self.events = events
        self.audit = audit
        self.control_agent = control_agent
        self.phones = phones
        self.known_skills = known_skills
        self.pause_reasons = pause_reasons
        self.clock = clock
        self._tasks = BackgroundTasks()
        # the supervisor legs rung for listening, by their uniqueid: who, whom, how, since when
        self._spies: dict[str, dict[str, Any]] = {}

    async def _audit(self, who: Identity, action: str, target: str, **details: Any) -> None:
        await asyncio.to_thread(self.audit.record, who.actor, action, target, **details)

    # ------------------------------------------------------------------ listen, whisper, barge
    async def spy(self, who: Identity, agent_id: str, mode: str) -> dict[str, Any]:
        if mode not in SPY_MODES:
            raise SupervisorError(400, f"mode must be one of {list(SPY_MODES)}", field="mode")
        if who.username is None or who.username not in self.phones():
            raise SupervisorError(409, "you have no phone to listen on: give your user name a phone in the "
                                       "settings' supervisor_phones", field="phone")
        agent = self.router.agent(agent_id)
        if agent is None or agent.state is not AgentState.ON_CALL:
            raise SupervisorError(409, f"agent {agent_id} is not on a call")
        await self._audit(who, f"spy_{mode}", f"agent:{agent_id}", call_id=agent.call_id)
        channel_id = f"spy-{uuid.uuid4().hex[:16]}"
        self._spies[channel_id] = {"agent_id": agent_id, "call_id": agent.call_id, "mode": mode,
                                   "supervisor": who.username, "started": None}
        self._tasks.spawn(self._ring_supervisor(who.username, agent_id, agent.call_id, mode, channel_id),
                          f"spy {channel_id}")
        return {"agent_id": agent_id, "call_id": agent.call_id, "mode": mode,
                "phone": supervisor_endpoint(who.username), "ringing": True}

    async def _ring_supervisor(self, username: str, agent_id: str, call_id: str, mode: str, channel_id: str) -> None:
        try:
            result = await self.ami.originate_to_context(
                channel=f"PJSIP/{supervisor_endpoint(username)}", context="cc-spy", exten="s",
                ring_timeout=SPY_RING_SECONDS, channel_id=channel_id,
                caller_id=f'"{mode} {agent_id}" <{agent_id}>',
                variables={"CC_SPY_AGENT": agent_id, "CC_SPY_MODE": mode, "CC_SPY_SUPERVISOR": username,
                           "CC_CALLID": call_id})
        except (AmiError, TimeoutError, ConnectionError) as exc:
            log.warning("%s of agent %s for %s: the supervisor's phone was not rung: %s", mode, agent_id, username, exc)
            self._spies.pop(channel_id, None)
            return
        if not result.answered:
            log.info("%s of agent %s: %s's phone did not answer (reason %s)", mode, agent_id, username, result.reason)
            self._spies.pop(channel_id, None)

    def spy_started(self, spyer_uniqueid: str, spyee_channel: str) -> None:
        """Asterisk's ChanSpyStart: one of our supervisor legs is now hearing the agent's channel."""
        spy = self._spies.get(spyer_uniqueid)
        if spy is None or not spyee_channel.startswith(f"PJSIP/agent{spy['agent_id']}-"):
            return  # not a leg this engine rang, or not the agent it was rung for
        spy["started"] = self.clock()
        self.events.record("spy_started", call_id=spy["call_id"], agent_id=spy["agent_id"],
                           data={"mode": spy["mode"], "supervisor": spy["supervisor"]})

    def channel_gone(self, uniqueid: str) -> None:
        spy = self._spies.pop(uniqueid, None)
        if spy is not None and spy["started"] is not None:
            self.events.record("spy_ended", call_id=spy["call_id"], agent_id=spy["agent_id"],
                               data={"mode": spy["mode"], "supervisor": spy["supervisor"],
                                     "seconds": round(self.clock() - spy["started"], 3)})

    # ------------------------------------------------------------------ agents
    async def agent_state(self, who: Identity, agent_id: str, verb: str, reason: str | None) -> dict[str, Any]:
        if verb == "pause" and reason not in self.pause_reasons:
            raise SupervisorError(400, f"reason must be one of {sorted(self.pause_reasons)}", field="reason")
        try:
            forwarded_to = self.control_agent(verb, agent_id, reason=reason and f"{reason} (by {who.username or 'admin'})")
        except LookupError as exc:
            raise SupervisorError(404, str(exc)) from None
        except RoutingError as exc:
            raise SupervisorError(409, str(exc)) from None
        await self._audit(who, f"agent_{verb}", f"agent:{agent_id}", reason=reason)
        if forwarded_to:  # the agent works on another engine sharing the queues, which carries it out
            return {"agent_id": agent_id, "engine": forwarded_to, "forwarded": verb}
        return self.router.agent_snapshot(agent_id, self.clock()) or {"agent_id": agent_id, "state": "logged_out"}

    async def set_skills(self, who: Identity, agent_id: str, skills: object) -> dict[str, Any]:
        """Replace a logged-in agent's skill levels until the next login or routing reload;
        the router uses them from its next decision."""
        if not isinstance(skills, Mapping):
            raise SupervisorError(400, "skills must be an object of skill name to level (1..10)", field="skills")
        try:
            checked = check_skills(skills)
        except SkillError as exc:
            raise SupervisorError(400, str(exc), field="skills") from None
        known = self.known_skills()
        for name in checked:
            if known is not None and name not in known:
                raise SupervisorError(400, unknown_skill_reason(name, known), field=f"skills.{name}")
        agent = self.router.agent(agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT:
            raise SupervisorError(409, f"agent {agent_id} is not logged in")
        before = self.router.agent_snapshot(agent_id, self.clock())["skills"]
        self.acd.apply(self.router.set_profile(agent_id, self.clock(), skills=with_identity(agent_id, checked)))
        await self._audit(who, "agent_skills_changed", f"agent:{agent_id}", before=before, after=checked)
        return self.router.agent_snapshot(agent_id, self.clock())

    # ------------------------------------------------------------------ waiting calls
    async def move_call(self, who: Identity, call_id: str, queue: object) -> dict[str, Any]:
        if not isinstance(queue, str) or not queue:
            raise SupervisorError(400, "give the queue to move the call to", field="queue")
        call = self.router.call(call_id)
        source = call.queue if call is not None else None
        try:
            self.acd.apply(self.router.move_call(call_id, queue, self.clock(), by=who.actor))
        except RoutingError as exc:
            raise SupervisorError(404 if call is None else 409, str(exc)) from None
        await self._audit(who, "call_moved", f"call:{call_id}", source=source, to=queue)
        channel = call.attrs.get("caller_channel")
        if channel:
            # a caller re-adopted by a restarted engine comes back in the queue it was moved to
            self._tasks.spawn(self._remember_queue(channel, queue), f"move {call_id}")
        return {"call_id": call_id, "queue": queue}

    async def _remember_queue(self, channel: str, queue: str) -> None:
        try:
            await self.ami.set_channel_var(channel, "CC_QUEUE", queue)
        except (AmiError, TimeoutError, ConnectionError) as exc:
            log.warning("moved call's channel %s keeps its old CC_QUEUE: %s", channel, exc)

    async def set_priority(self, who: Identity, call_id: str, priority: object) -> dict[str, Any]:
        call = self.router.call(call_id)
        before = call.priority if call is not None else None
        try:
            self.acd.apply(self.router.set_priority(call_id, priority, self.clock(), by=who.actor))
        except RoutingError as exc:
            if call is None or call.state is not CallState.WAITING:
                raise SupervisorError(404 if call is None else 409, str(exc)) from None
            raise SupervisorError(400, str(exc), field="priority") from None
        await self._audit(who, "call_priority_changed", f"call:{call_id}", before=before, to=priority)
        return {"call_id": call_id, "priority": priority}

    async def close(self) -> None:
        await self._tasks.close()
