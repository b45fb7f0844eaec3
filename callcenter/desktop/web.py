"""The desktop's web side: the agent's JSON endpoints (``/api/desktop/...``), their live channel
(``/live/desk``, Server-Sent Events), the page itself (``/desktop/``), and who a request comes from.

Every ``/api/desktop`` endpoint acts on the agent whose session cookie came with the request, and on
nobody else: there is no agent id in their paths or bodies to tamper with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from twisted.web import resource, server, static

from callcenter.acd.call_control import CallControl, CallControlError
from callcenter.acd.model import AgentState, RoutingError
from callcenter.desktop.service import DesktopError, DesktopService, NotYourCall
from callcenter.web.api import ApiError, JsonApi, Reply
from callcenter.web.auth import (SESSION_COOKIE, Credentials, Identity, LoginThrottle, Role, Sessions,
                                 bearer_matches, session_cookie)
from callcenter.web.live import LiveChannel

STATIC_DIR = Path(__file__).resolve().parent / "static"
# (verb, agent id, queues, reason) -> None; raises RoutingError / LookupError (engine.control_agent)
ControlAgent = Callable[..., None]


def _cookie(token: str, max_age: int | None = None) -> str:
    return session_cookie(SESSION_COOKIE, token, max_age)


class DesktopApi:
    def __init__(self, *, known_agents: Callable[[], set[str]], credentials: Credentials, sessions: Sessions,
                 api_token: str, desktop: DesktopService, calls: CallControl, control_agent: ControlAgent,
                 clock=time.time):
        self.known_agents = known_agents
        self.credentials = credentials
        self.sessions = sessions
        self.api_token = api_token
        self.desktop = desktop
        self.calls = calls
        self.control_agent = control_agent
        self.clock = clock
        self.throttle = LoginThrottle()
        self.live = LiveChannel(self._subscribe)
        desktop.publish = self.live.publish

    # ------------------------------------------------------------------ who is asking
    def identify(self, request: server.Request) -> Identity | None:
        if bearer_matches(request.getHeader("authorization"), self.api_token):
            return Identity(Role.ADMIN)
        agent_id = self.sessions.agent_for((request.getCookie(SESSION_COOKIE.encode()) or b"").decode("ascii", "replace"))
        return Identity(Role.AGENT, agent_id) if agent_id else None

    def _subscribe(self, request: server.Request):
        who = self.identify(request)
        if who is None or who.role is not Role.AGENT:
            raise PermissionError("log in to the desktop first")
        return who.agent_id, [("desk", self.desktop.desk_view(who.agent_id))]

    # ------------------------------------------------------------------ site parts
    def pages(self) -> dict[bytes, resource.Resource]:
        live = resource.Resource()
        live.putChild(b"desk", self.live)
        desktop = static.File(str(STATIC_DIR))
        desktop.indexNames = ["index.html"]
        return {b"desktop": desktop, b"live": live}

    def register(self, api: JsonApi) -> None:
        agent = Role.AGENT
        api.add("POST", "/api/desktop/login", self._login, role=Role.PUBLIC)
        api.add("POST", "/api/desktop/logout", self._logout, role=agent)
        api.add("GET", "/api/desktop", self._desk, role=agent)
        api.add("GET", "/api/desktop/figures", lambda who, **_: self.desktop.figures(who.agent_id), role=agent)
        api.add("POST", "/api/desktop/ready", self._ready, role=agent)
        api.add("POST", "/api/desktop/pause", self._pause, role=agent)
        api.add("POST", "/api/desktop/hold", lambda who, **_: self._call_action(self.calls.hold(who.agent_id)), role=agent)
        api.add("POST", "/api/desktop/resume", lambda who, **_: self._call_action(self.calls.resume(who.agent_id)),
                role=agent)
        api.add("POST", "/api/desktop/recording/pause",
                lambda who, **_: self._call_action(self.calls.pause_recording(who.agent_id, True)), role=agent)
        api.add("POST", "/api/desktop/recording/resume",
                lambda who, **_: self._call_action(self.calls.pause_recording(who.agent_id, False)), role=agent)
        api.add("POST", "/api/desktop/transfer", self._transfer, role=agent)
        api.add("POST", "/api/desktop/wrapup/end", self._end_wrapup, role=agent)
        api.add("POST", "/api/desktop/calls/{call_id}/outcome", self._outcome, role=agent)
        api.add("GET", "/api/calls/{call_id}/pop", self._pop, role=(Role.AGENT, Role.ADMIN))

    # ------------------------------------------------------------------ handlers
    async def _login(self, body: dict, **_) -> Reply:
        agent_id, password = str(body.get("agent_id", "")), body.get("password")
        if not isinstance(password, str) or not agent_id:
            raise ApiError(400, "give agent_id and password")
        now = self.clock()
        if not self.throttle.allowed(agent_id, now):
            raise ApiError(429, "too many failed logins for this agent; wait a few minutes")
        known = agent_id in self.known_agents()
        ok = await asyncio.to_thread(self.credentials.verify, agent_id, password)
        if not (ok and known):
            self.throttle.failed(agent_id, now)
            raise ApiError(401, "wrong agent id or password")
        self.throttle.succeeded(agent_id)
        token = self.sessions.open(agent_id)
        return Reply({"agent_id": agent_id, **self.desktop.options(agent_id)}, {"set-cookie": _cookie(token)})

    def _logout(self, who: Identity, **_) -> Reply:
        state = self.desktop.desk_view(who.agent_id)["agent"]["state"]
        if state in (AgentState.RESERVED.value, AgentState.ON_CALL.value):
            raise ApiError(409, "finish the call before logging out")
        if state != AgentState.LOGGED_OUT.value:
            self._control("logout", who.agent_id)
        self.sessions.close_agent(who.agent_id)
        return Reply({"agent_id": who.agent_id, "logged_out": True}, {"set-cookie": _cookie("", max_age=0)})

    def _desk(self, who: Identity, **_) -> dict:
        return {**self.desktop.desk_view(who.agent_id), "options": self.desktop.options(who.agent_id)}

    def _ready(self, who: Identity, **_) -> dict:
        state = self.desktop.desk_view(who.agent_id)["agent"]["state"]
        if state == AgentState.LOGGED_OUT.value:
            self._control("login", who.agent_id)
        elif state == AgentState.PAUSED.value:
            self._control("unpause", who.agent_id)
        elif state == AgentState.WRAP_UP.value:
            self._call_errors(self.calls.end_wrapup, who.agent_id)
        return self.desktop.desk_view(who.agent_id)

    def _pause(self, who: Identity, body: dict, **_) -> dict:
        reason = body.get("reason")
        if reason not in self.desktop.pause_reasons:
            raise ApiError(400, f"reason must be one of {list(self.desktop.pause_reasons)}")
        if self.desktop.desk_view(who.agent_id)["agent"]["state"] == AgentState.LOGGED_OUT.value:
            self._control("login", who.agent_id)
        self._control("pause", who.agent_id, reason=reason)
        return self.desktop.desk_view(who.agent_id)

    async def _transfer(self, who: Identity, body: dict, **_) -> dict:
        queue, to_agent = body.get("queue"), body.get("agent")
        if queue is None and to_agent is None:
            raise ApiError(400, "give the queue or the agent to transfer to")
        if not all(v is None or isinstance(v, str) for v in (queue, to_agent)):
            raise ApiError(400, "queue and agent are strings")
        return await self._call_action(self.calls.transfer(who.agent_id, queue=queue, to_agent=to_agent))

    def _end_wrapup(self, who: Identity, **_) -> dict:
        return self._call_errors(self.calls.end_wrapup, who.agent_id)

    async def _outcome(self, who: Identity, call_id: str, body: dict, **_) -> dict:
        try:
            return await self.desktop.save_outcome(
                who.agent_id, call_id, disposition=body.get("disposition"), resolved=body.get("resolved"),
                notes=body.get("notes"))
        except NotYourCall as exc:
            raise ApiError(403, str(exc)) from None
        except DesktopError as exc:
            raise ApiError(400, str(exc)) from None

    def _pop(self, who: Identity, call_id: str, **_) -> dict:
        try:
            return self.desktop.pop_for(call_id, who.agent_id if who.role is Role.AGENT else None)
        except DesktopError as exc:
            raise ApiError(404, str(exc)) from None

    # ------------------------------------------------------------------ helpers
    def _control(self, verb: str, agent_id: str, **kwargs) -> None:
        try:
            self.control_agent(verb, agent_id, **kwargs)
        except (RoutingError, LookupError) as exc:
            raise ApiError(409, str(exc)) from None

    @staticmethod
    def _call_errors(action: Callable[[str], dict], agent_id: str) -> dict:
        try:
            return action(agent_id)
        except CallControlError as exc:
            raise ApiError(409, str(exc)) from None

    @staticmethod
    async def _call_action(action) -> dict:
        try:
            return await action
        except CallControlError as exc:
            raise ApiError(409, str(exc)) from None

    def close(self) -> None:
        self.live.close()
