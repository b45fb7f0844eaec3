"""Staff users and their web sessions: StaffUsers on SQLite, and StaffApi + WebIdentities driven
through the real JsonApi router with Twisted's DummyRequest (cookies sent as a Cookie header, the
async handlers run on an asyncio loop). A token only counts under its own cookie; the API token is
an admin; a browser holding an agent's and a staff session may call both kinds of route."""

from __future__ import annotations

import asyncio
import io
import json
import time
from http.cookies import SimpleCookie

import pytest
from argon2 import PasswordHasher
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from callcenter.storage import make_engine
from callcenter.web.api import JsonApi
from callcenter.web.auth import FLOOR, PasswordError, Role, Sessions, StaffUsers
from callcenter.web.staff import STAFF_COOKIE, StaffApi, WebIdentities

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # the same algorithm, test-sized
API_TOKEN = "ops-token-0123456789abcdefghijklmnop"
PASSWORD = "correct horse"


@pytest.fixture
def users(tmp_path) -> StaffUsers:
    return StaffUsers(make_engine(f"sqlite:///{tmp_path / 'cc.db'}"), hasher=FAST)


# ---------------------------------------------------------------------------- StaffUsers
def test_add_role_of_list_and_remove(users):
    users.add("sam", Role.SUPERVISOR, PASSWORD)
    users.add("quinn", "qa", PASSWORD)
    users.add("ada", "admin", PASSWORD)
    assert (users.role_of("sam"), users.role_of("quinn"), users.role_of("ada")) == (Role.SUPERVISOR, Role.QA,
                                                                                    Role.ADMIN)
    assert users.role_of("nobody") is None
    listed = users.list()
    assert [(u["username"], u["role"]) for u in listed] == [("ada", "admin"), ("quinn", "qa"), ("sam", "supervisor")]
    assert all(isinstance(u["updated_at"], float) for u in listed)
    users.add("sam", "admin", "another password")  # add again: role and password updated
    assert users.role_of("sam") is Role.ADMIN
    assert users.verify("sam", "another password") and not users.verify("sam", PASSWORD)
    assert len(users.list()) == 3
    assert users.remove("quinn") is True
    assert users.remove("quinn") is False
    assert users.role_of("quinn") is None and not users.verify("quinn", PASSWORD)
    assert [u["username"] for u in users.list()] == ["ada", "sam"]


def test_passwords_are_stored_as_argon2id_hashes(users):
    users.add("sam", "supervisor", PASSWORD)
    with users.engine.connect() as conn:
        stored = conn.exec_driver_sql("select password_hash from staff_users").scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users.verify("sam", PASSWORD) and not users.verify("sam", PASSWORD + "!")


@pytest.mark.parametrize("name", ["a", "Sam", "1sam", "_sam", "sam smith", "sam@home", "s" * 33, ""])
def test_bad_user_names_are_refused(users, name):
    with pytest.raises(PasswordError, match="user name"):
        users.add(name, "supervisor", PASSWORD)
    assert users.list() == []


@pytest.mark.parametrize("name", ["ab", "sam.smith", "s-1_x", "s" * 32])
def test_good_user_names(users, name):
    users.add(name, "qa", PASSWORD)
    assert users.role_of(name) is Role.QA


@pytest.mark.parametrize("role", ["agent", "public", Role.AGENT])
def test_non_staff_roles_are_refused(users, role):
    with pytest.raises(PasswordError, match="staff user is one of"):
        users.add("sam", role, PASSWORD)
    assert users.role_of("sam") is None


def test_an_unknown_role_and_a_short_password_are_refused(users):
    with pytest.raises(ValueError):
        users.add("sam", "boss", PASSWORD)
    with pytest.raises(PasswordError, match="at least 8"):
        users.add("sam", "supervisor", "short")
    assert users.list() == []


def test_set_password_only_for_existing_users(users):
    with pytest.raises(LookupError, match="no staff user 'ghost'"):
        users.set_password("ghost", PASSWORD)
    assert users.list() == [] and not users.has_password("ghost")
    users.add("sam", "supervisor", PASSWORD)
    users.set_password("sam", "a new password")
    assert users.verify("sam", "a new password") and users.role_of("sam") is Role.SUPERVISOR


# ---------------------------------------------------------------------------- the web side
class CookieRequest(DummyRequest):
    """DummyRequest with cookies read from the Cookie header, as twisted.web's Request does."""

    def getCookie(self, key: bytes) -> bytes | None:
        jar = SimpleCookie((self.getHeader("cookie") or ""))
        morsel = jar.get(key.decode())
        return morsel.value.encode() if morsel is not None else None


class Web:
    def __init__(self, users: StaffUsers) -> None:
        self.now = [1000.0]
        self.users = users
        self.sessions = Sessions(idle_seconds=3600, clock=lambda: self.now[0])
        self.identities = WebIdentities(API_TOKEN, self.sessions)
        self.api = JsonApi(allowed_hosts={"127.0.0.1:8080"}, identify=self.identities.identify)
        self.staff = StaffApi(users, self.sessions, clock=lambda: self.now[0])
        self.staff.register(self.api)
        # an agent-only and a floor (supervisor) route, as the desktop and the wallboard add them
        self.api.add("GET", "/api/desktop/state", lambda who, **_: {"agent": who.agent_id}, role=Role.AGENT)
        self.api.add("GET", "/api/supervisor/floor", lambda who, **_: {"user": who.username,
                                                                        "role": who.role.value}, role=FLOOR)

    def request(self, path: str, method: str = "GET", *, body: object = None, cookies: dict | None = None,
                headers: dict | None = None) -> tuple[int, object, CookieRequest]:
        req = CookieRequest(path.strip("/").split("/"))
        req.path, req.method = path.encode(), method.encode()
        req._disconnected = False  # JsonApi looks at it when an async handler finishes
        sent = {"host": "127.0.0.1:8080", **(headers or {})}
        if cookies:
            sent["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        for name, value in sent.items():
            req.requestHeaders.setRawHeaders(name, [value])
        if body is not None:
            req.requestHeaders.setRawHeaders("content-type", ["application/json"])
            req.content = io.BytesIO(json.dumps(body).encode())

        async def answer() -> bytes:
            written = self.api.render(req)
            if written is not server.NOT_DONE_YET:
                return written
            deadline = time.monotonic() + 10
            while not req.finished and time.monotonic() < deadline:
                await asyncio.sleep(0.001)  # the password check runs in a thread
            assert req.finished, f"{path} never finished"
            return b"".join(req.written)

        raw = asyncio.run(answer())
        return req.responseCode or 200, json.loads(raw), req

    def login(self, username: str, password: str = PASSWORD) -> tuple[int, object, CookieRequest]:
        return self.request("/api/staff/login", "POST", body={"username": username, "password": password})

    def staff_cookie(self, username: str, password: str = PASSWORD) -> dict:
        code, body, req = self.login(username, password)
        assert code == 200, body
        return {STAFF_COOKIE: token_of(req)}


def set_cookie(req: DummyRequest) -> str:
    (header,) = req.responseHeaders.getRawHeaders("set-cookie")
    return header


def token_of(req: DummyRequest) -> str:
    name, _, rest = set_cookie(req).partition("=")
    assert name == STAFF_COOKIE
    return rest.split(";")[0]


@pytest.fixture
def web(users) -> Web:
    users.add("sam", "supervisor", PASSWORD)
    users.add("quinn", "qa", PASSWORD)
    users.add("ada", "admin", PASSWORD)
    return Web(users)


def test_login_sets_an_httponly_samesite_strict_staff_cookie(web):
    code, body, req = web.login("sam")
    assert (code, body) == (200, {"username": "sam", "role": "supervisor"})
    cookie = set_cookie(req)
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0].startswith("cc_staff=") and len(token_of(req)) >= 32
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Path=/" in attributes
    me = web.request("/api/staff/me", cookies={STAFF_COOKIE: token_of(req)})
    assert me[:2] == (200, {"username": "sam", "role": "supervisor"})


def test_each_login_is_a_new_session(web):
    assert web.staff_cookie("sam") != web.staff_cookie("sam")


@pytest.mark.parametrize("username, password", [("sam", "wrong password"), ("nobody", PASSWORD),
                                                ("sam", PASSWORD.upper())])
def test_a_wrong_user_name_or_password_is_401(web, username, password):
    code, body, req = web.login(username, password)
    assert (code, body) == (401, {"error": "wrong user name or password"})
    assert req.responseHeaders.getRawHeaders("set-cookie") is None


@pytest.mark.parametrize("body", [{"username": "sam"}, {"password": PASSWORD}, {"username": "sam", "password": 5}])
def test_login_needs_a_user_name_and_a_password(web, body):
    code, answer, _ = web.request("/api/staff/login", "POST", body=body)
    assert code == 400


def test_logins_are_throttled_after_five_failures(web):
    for _ in range(5):
        assert web.login("sam", "wrong password")[0] == 401
    code, body, _ = web.login("sam")  # even the right password, for now
    assert code == 429 and "too many failed logins" in body["error"]
    assert web.login("ada")[0] == 200, "other users are not affected"
    web.now[0] += 301  # the window has passed
    assert web.login("sam")[0] == 200


def test_a_successful_login_forgets_earlier_failures(web):
    for _ in range(4):
        assert web.login("sam", "wrong password")[0] == 401
    assert web.login("sam")[0] == 200
    for _ in range(4):
        assert web.login("sam", "wrong password")[0] == 401
    assert web.login("sam")[0] == 200


def test_me_needs_a_staff_session(web):
    assert web.request("/api/staff/me")[0] == 401
    assert web.request("/api/staff/me", cookies={STAFF_COOKIE: "made-up"})[0] == 401


def test_a_staff_token_is_not_an_agent_cookie_and_vice_versa(web):
    staff_token = web.staff_cookie("sam")[STAFF_COOKIE]
    agent_token = web.sessions.open("1001")
    assert web.request("/api/desktop/state", cookies={"cc_session": agent_token})[:2] == (200, {"agent": "1001"})
    # the staff token under the agent's cookie name: no one
    assert web.request("/api/desktop/state", cookies={"cc_session": staff_token})[0] == 401
    assert web.request("/api/staff/me", cookies={"cc_session": staff_token})[0] == 401
    assert web.request("/api/supervisor/floor", cookies={"cc_session": staff_token})[0] == 401
    # the agent's token under the staff cookie name: no one either
    assert web.request("/api/staff/me", cookies={STAFF_COOKIE: agent_token})[0] == 401
    assert web.request("/api/desktop/state", cookies={STAFF_COOKIE: agent_token})[0] == 401


def test_the_api_token_is_an_admin(web):
    bearer = {"authorization": f"Bearer {API_TOKEN}"}
    assert web.request("/api/staff/me", headers=bearer)[:2] == (200, {"username": None, "role": "admin"})
    code, body, _ = web.request("/api/staff/users", headers=bearer)
    assert code == 200 and [u["username"] for u in body["users"]] == ["ada", "quinn", "sam"]
    assert web.request("/api/supervisor/floor", headers=bearer)[:2] == (200, {"user": None, "role": "admin"})
    assert web.request("/api/staff/me", headers={"authorization": f"Bearer {API_TOKEN}x"})[0] == 401


def test_a_browser_with_an_agent_and_a_staff_session_may_call_both_kinds_of_route(web):
    both = {"cc_session": web.sessions.open("1001"), **web.staff_cookie("sam")}
    assert web.request("/api/desktop/state", cookies=both)[:2] == (200, {"agent": "1001"})
    assert web.request("/api/supervisor/floor", cookies=both)[:2] == (200, {"user": "sam", "role": "supervisor"})
    assert web.request("/api/staff/me", cookies=both)[:2] == (200, {"username": "sam", "role": "supervisor"})
    code, body, _ = web.request("/api/staff/users", cookies=both)  # admin only: neither fits
    assert code == 403 and "may not call" in body["error"]


def test_web_identities_staff_picks_the_staff_member(web):
    req = CookieRequest([])
    req.requestHeaders.setRawHeaders("cookie", [f"cc_session={web.sessions.open('1001')}"])
    assert web.identities.staff(req) is None  # an agent only
    sam = web.staff_cookie("sam")[STAFF_COOKIE]
    req.requestHeaders.setRawHeaders("cookie", [f"cc_session={web.sessions.open('1001')}; cc_staff={sam}"])
    assert [w.role for w in web.identities.identify(req)] == [Role.AGENT, Role.SUPERVISOR]
    who = web.identities.staff(req)
    assert (who.role, who.username) == (Role.SUPERVISOR, "sam")
    bearer = CookieRequest([])
    bearer.requestHeaders.setRawHeaders("authorization", [f"Bearer {API_TOKEN}"])
    assert web.identities.staff(bearer).role is Role.ADMIN and web.identities.staff(bearer).username is None


def test_logout_ends_the_session(web):
    cookie = web.staff_cookie("sam")
    other_tab = web.staff_cookie("sam")
    ada = web.staff_cookie("ada")
    code, body, req = web.request("/api/staff/logout", "POST", body={}, cookies=cookie)
    assert (code, body) == (200, {"logged_out": True})
    assert set_cookie(req).startswith("cc_staff=;") and "Max-Age=0" in set_cookie(req)
    assert web.request("/api/staff/me", cookies=cookie)[0] == 401
    assert web.request("/api/staff/me", cookies=other_tab)[0] == 401  # the user's sessions end
    assert web.request("/api/staff/me", cookies=ada)[0] == 200  # not anyone else's
    assert web.request("/api/staff/logout", "POST", body={}, cookies=cookie)[0] == 401


def test_staff_sessions_expire_when_idle(web):
    cookie = web.staff_cookie("sam")
    web.now[0] += 3601
    assert web.request("/api/staff/me", cookies=cookie)[0] == 401


@pytest.mark.parametrize("who", ["sam", "quinn"])
def test_user_management_is_for_admins_only(web, who):
    cookie = web.staff_cookie(who)
    new = {"username": "newbie", "role": "qa", "password": PASSWORD}
    for path, method, body in [("/api/staff/users", "GET", None), ("/api/staff/users", "POST", new),
                               ("/api/staff/users/ada/remove", "POST", {})]:
        code, answer, _ = web.request(path, method, body=body, cookies=cookie)
        assert code == 403 and "may not call" in answer["error"], (path, answer)
    assert web.users.role_of("newbie") is None and web.users.role_of("ada") is Role.ADMIN
    assert web.request("/api/staff/users")[0] == 401  # and nobody at all: log in first


def test_an_admin_manages_users(web):
    admin = web.staff_cookie("ada")
    new = {"username": "newbie", "role": "qa", "password": PASSWORD}
    assert web.request("/api/staff/users", "POST", body=new, cookies=admin)[:2] == (200, {"username": "newbie",
                                                                                          "role": "qa"})
    assert web.users.role_of("newbie") is Role.QA
    code, body, _ = web.request("/api/staff/users", cookies=admin)
    assert code == 200 and ("newbie", "qa") in [(u["username"], u["role"]) for u in body["users"]]
    assert all("password_hash" not in u for u in body["users"])
    newbie = web.staff_cookie("newbie")
    for bad in [{**new, "role": "agent"}, {**new, "role": "boss"}, {**new, "username": "Bad Name"},
                {**new, "password": "short"}, {"username": "x1", "role": "qa"}, {**new, "password": 12345678}]:
        code, answer, _ = web.request("/api/staff/users", "POST", body=bad, cookies=admin)
        assert code == 400, (bad, answer)
    assert web.request("/api/staff/users/newbie/remove", "POST", body={}, cookies=admin)[:2] == (
        200, {"username": "newbie", "removed": True})
    assert web.users.role_of("newbie") is None
    assert web.request("/api/staff/me", cookies=newbie)[0] == 401  # a removed user's sessions end
    code, body, _ = web.request("/api/staff/users/newbie/remove", "POST", body={}, cookies=admin)
    assert code == 404 and "no staff user 'newbie'" in body["error"]


def test_changing_a_users_role_ends_their_sessions(web):
    admin = web.staff_cookie("ada")
    sam = web.staff_cookie("sam")
    assert web.request("/api/supervisor/floor", cookies=sam)[0] == 200
    demote = {"username": "sam", "role": "qa", "password": "a new password"}
    assert web.request("/api/staff/users", "POST", body=demote, cookies=admin)[0] == 200
    assert web.users.role_of("sam") is Role.QA
    assert web.request("/api/supervisor/floor", cookies=sam)[0] in (401, 403)
