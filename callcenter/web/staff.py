"""Staff on the web side: supervisors, QA analysts and admins log in with a user name and a
password (Argon2id, ``callcenter user add``), hold a ``cc_staff`` session cookie (HttpOnly,
SameSite=Strict, in memory), and admins manage the users. Who a request comes from, for every
route, is decided by :meth:`WebIdentities.identify`: the API token, an agent's desktop session,
a staff session — a browser may hold more than one."""

from __future__ import annotations

import asyncio
import time

from twisted.web import server

from callcenter.web.api import ApiError, JsonApi, Reply
from callcenter.web.auth import (SESSION_COOKIE, STAFF_ROLES, Identity, LoginThrottle, PasswordError, Role,
                                 Sessions, StaffUsers, bearer_matches, session_cookie)

STAFF_COOKIE = "cc_staff"


def _cookie_value(request: server.Request, name: str) -> str:
    return (request.getCookie(name.encode()) or b"").decode("ascii", "replace")

class WebIdentities:
    """Everyone a request may come from, in the order routes try them."""

    def __init__(self, api_token: str, sessions: Sessions):
        self.api_token = api_token
        self.sessions = sessions

    def identify(self, request: server.Request) -> list[Identity]:
        found = []
        if bearer_matches(request.getHeader("authorization"), self.api_token):
            found.append(Identity(Role.ADMIN))
        for cookie, roles in ((SESSION_COOKIE, (Role.AGENT,)), (STAFF_COOKIE, STAFF_ROLES)):
            who = self.sessions.identity_for(_cookie_value(request, cookie))
            if who is not None and who.role in roles:  # a token only counts under its own cookie
                found.append(who)
        return found

    def staff(self, request: server.Request) -> Identity | None:
        """The staff member (or API token) behind a request: the live wallboard's check."""
        return next((w for w in self.identify(request) if w.role in STAFF_ROLES), None)

class StaffApi:
    def __init__(self, users: StaffUsers, sessions: Sessions, *, clock=time.time):
        self.users = users
        self.sessions = sessions
        self.clock = clock
        self.throttle = LoginThrottle()

    def register(self, api: JsonApi) -> None:
        api.add("POST", "/api/staff/login", self._login, role=Role.PUBLIC)
        api.add("POST", "/api/staff/logout", self._logout, role=STAFF_ROLES)
        api.add("GET", "/api/staff/me", self._me, role=STAFF_ROLES)
        api.add("GET", "/api/staff/users", self._list, role=Role.ADMIN)
        api.add("POST", "/api/staff/users", self._add, role=Role.ADMIN)
        api.add("POST", "/api/staff/users/{username}/remove", self._remove, role=Role.ADMIN)

    async def _login(self, body: dict, **_) -> Reply:
        username, password = str(body.get("username", "")), body.get("password")
        if not isinstance(password, str) or not username:
            raise ApiError(400, "give username and password")
        now = self.clock()
        if not self.throttle.allowed(username, now):
            raise ApiError(429, "too many failed logins for this user; wait a few minutes")
        ok = await asyncio.to_thread(self.users.verify, username, password)
        role = await asyncio.to_thread(self.users.role_of, username) if ok else None
        if role is None:
            self.throttle.failed(username, now)
            raise ApiError(401, "wrong user name or password")
        self.throttle.succeeded(username)
        token = self.sessions.open(Identity(role, username=username))
        return Reply({"username": username, "role": role.value}, {"set-cookie": session_cookie(STAFF_COOKIE, token)})

    def _logout(self, who: Identity, **_) -> Reply:
        if who.username:
            self.sessions.close_user(who.username)
        return Reply({"logged_out": True}, {"set-cookie": session_cookie(STAFF_COOKIE, "", max_age=0)})

    @staticmethod
    def _me(who: Identity, **_) -> dict:
        return {"username": who.username, "role": who.role.value}

    async def _list(self, **_) -> dict:
        return {"users": await asyncio.to_thread(self.users.list)}

    async def _add(self, body: dict, **_) -> dict:
        username, role, password = body.get("username"), body.get("role"), body.get("password")
        if not all(isinstance(v, str) for v in (username, role, password)):
            raise ApiError(400, "give username, role and password (strings)")
        try:
            await asyncio.to_thread(self.users.add, username, role, password)
        except (PasswordError, ValueError) as exc:
            raise ApiError(400, str(exc)) from None
        self.sessions.close_user(username)  # a new role or password holds from the next login
        return {"username": username, "role": role}

    async def _remove(self, username: str, **_) -> dict:
        removed = await asyncio.to_thread(self.users.remove, username)
        if not removed:
            raise ApiError(404, f"no staff user {username!r}")
        self.sessions.close_user(username)
        return {"username": username, "removed": True}

