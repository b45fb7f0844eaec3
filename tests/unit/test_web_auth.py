"""Who may call the web side: passwords, sessions, login throttling, the ops token, and the JSON
API's per-route roles (driven through Twisted's own test request)."""

from __future__ import annotations

import io
import json
import stat

import pytest
from argon2 import PasswordHasher
from twisted.web.test.requesthelper import DummyRequest

from callcenter.storage import make_engine
from callcenter.web.api import JsonApi, Reply
from callcenter.web.auth import (Credentials, Identity, LoginThrottle, PasswordError, Role, Sessions, api_token,
                                 bearer_matches, read_api_token)

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # the same algorithm, test-sized


@pytest.fixture
def credentials(tmp_path):
    return Credentials(make_engine(f"sqlite:///{tmp_path / 'cc.db'}"), hasher=FAST)


def test_passwords_are_stored_hashed_and_checked(credentials):
    credentials.set_password("1001", "correct horse")
    assert credentials.verify("1001", "correct horse")
    assert not credentials.verify("1001", "correct hors")
    assert not credentials.verify("1002", "correct horse"), "no password set: refused"
    with credentials.engine.connect() as conn:
        stored = conn.exec_driver_sql("select password_hash from agent_credentials").scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    credentials.set_password("1001", "a new one!")
    assert credentials.verify("1001", "a new one!") and not credentials.verify("1001", "correct horse")


def test_short_passwords_are_refused(credentials):
    with pytest.raises(PasswordError, match="at least 8"):
        credentials.set_password("1001", "short")
    assert not credentials.has_password("1001")


def test_a_weaker_old_hash_is_upgraded_at_the_next_login(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    Credentials(db, hasher=FAST).set_password("1001", "correct horse")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    assert Credentials(db, hasher=stronger).verify("1001", "correct horse")
    with db.connect() as conn:
        stored = conn.exec_driver_sql("select password_hash from agent_credentials").scalar_one()
    assert not stronger.check_needs_rehash(stored)


def test_sessions_expire_when_idle_and_end_on_logout():
    now = [1000.0]
    sessions = Sessions(idle_seconds=60, clock=lambda: now[0])
    token = sessions.open("1001")
    now[0] += 59
    assert sessions.agent_for(token) == "1001"
    now[0] += 59  # idle time counts from the last use
    assert sessions.agent_for(token) == "1001"
    now[0] += 61
    assert sessions.agent_for(token) is None
    other = sessions.open("1001")
    sessions.close_agent("1001")
    assert sessions.agent_for(other) is None
    assert sessions.agent_for(None) is None and sessions.agent_for("made-up") is None


def test_login_throttle_allows_a_few_failures_per_window():
    throttle = LoginThrottle(attempts=3, window=60)
    for t in (0, 1, 2):
        assert throttle.allowed("1001", t)
        throttle.failed("1001", t)
    assert not throttle.allowed("1001", 3)
    assert throttle.allowed("1002", 3), "other agents are not affected"
    assert throttle.allowed("1001", 61), "failures older than the window are forgotten"
    throttle.succeeded("1001")
    assert throttle.allowed("1001", 4)


def test_the_api_token_file_is_private_and_kept(tmp_path):
    assert read_api_token(tmp_path) is None
    token = api_token(tmp_path)
    assert len(token) > 30 and api_token(tmp_path) == token == read_api_token(tmp_path)
    assert stat.S_IMODE((tmp_path / "api-token").stat().st_mode) == 0o600
    assert bearer_matches(f"Bearer {token}", token) and bearer_matches(f"bearer  {token} ", token)
    assert not bearer_matches(f"Basic {token}", token) and not bearer_matches(None, token)
    assert not bearer_matches("Bearer " + token[:-1], token)


# ---- the API's roles ---------------------------------------------------------------------------
def request(path: str, method: str = "GET", headers: dict | None = None, body: dict | None = None) -> DummyRequest:
    req = DummyRequest(path.strip("/").split("/"))
    req.path = path.encode()
    req.method = method.encode()
    for name, value in {"host": "127.0.0.1:8080", **(headers or {})}.items():
        req.requestHeaders.setRawHeaders(name, [value])
    if body is not None:
        req.requestHeaders.setRawHeaders("content-type", ["application/json"])
        req.content = io.BytesIO(json.dumps(body).encode())
    return req


def call(api: JsonApi, req: DummyRequest) -> tuple[int, object, DummyRequest]:
    body = api.render(req)
    return req.responseCode or 200, json.loads(body), req


@pytest.fixture
def api():
    def identify(req):
        who = req.getHeader("x-test-who")
        if who == "ops":
            return Identity(Role.ADMIN)
        return Identity(Role.AGENT, who) if who else None

    api = JsonApi(allowed_hosts={"127.0.0.1:8080"}, identify=identify)
    api.add("GET", "/api/health", lambda **_: {"ok": True}, role=Role.PUBLIC)
    api.add("GET", "/api/agents", lambda **_: ["everyone"])  # ops by default
    api.add("GET", "/api/desktop", lambda who, **_: {"me": who.agent_id}, role=Role.AGENT)
    api.add("GET", "/api/calls/{call_id}/pop", lambda who, call_id, **_: {"by": who.role.value, "call": call_id},
            role=(Role.AGENT, Role.ADMIN))
    api.add("POST", "/api/desktop/login", lambda body, **_: Reply({"hi": body["agent_id"]},
                                                                  {"set-cookie": "cc_session=t; HttpOnly"}),
            role=Role.PUBLIC)
    return api


@pytest.mark.parametrize("who, path, status", [
    (None, "/api/health", 200), ("1001", "/api/health", 200), ("ops", "/api/health", 200),
    (None, "/api/agents", 401), ("1001", "/api/agents", 403), ("ops", "/api/agents", 200),
    (None, "/api/desktop", 401), ("ops", "/api/desktop", 403), ("1001", "/api/desktop", 200),
    (None, "/api/calls/c1/pop", 401), ("1001", "/api/calls/c1/pop", 200), ("ops", "/api/calls/c1/pop", 200),
])
def test_every_route_serves_only_its_roles(api, who, path, status):
    code, body, _ = call(api, request(path, headers={"x-test-who": who} if who else {}))
    assert code == status, body
    if status == 401:
        assert "log in" in body["error"]
    if status == 403:
        assert "may not call" in body["error"]


def test_handlers_are_told_who_called(api):
    assert call(api, request("/api/desktop", headers={"x-test-who": "1004"}))[1] == {"me": "1004"}
    assert call(api, request("/api/calls/c9/pop", headers={"x-test-who": "ops"}))[1] == {"by": "admin", "call": "c9"}


def test_a_reply_sets_its_headers(api):
    code, body, req = call(api, request("/api/desktop/login", "POST", body={"agent_id": "1001"}))
    assert (code, body) == (200, {"hi": "1001"})
    assert req.responseHeaders.getRawHeaders("set-cookie") == ["cc_session=t; HttpOnly"]


# ---- every staff POST is audited -----------------------------------------------------------------
def test_staff_and_token_posts_are_audited_unless_the_route_audits_itself():
    actions = []
    people = {"sup": Identity(Role.SUPERVISOR, username="sam"), "token": Identity(Role.ADMIN),
              "1001": Identity(Role.AGENT, "1001")}
    api = JsonApi(allowed_hosts={"127.0.0.1:8080"}, identify=lambda req: people.get(req.getHeader("x-test-who")),
                  on_action=lambda who, method, path: actions.append((who.actor, method, path)))
    roles = (Role.SUPERVISOR, Role.ADMIN, Role.AGENT)
    api.add("POST", "/api/things/{name}/reset", lambda name, **_: {"reset": name}, role=roles)
    api.add("POST", "/api/self-audited", lambda **_: {"ok": True}, role=roles, audited=True)
    api.add("POST", "/api/broken", lambda **_: 1 / 0, role=roles)
    api.add("GET", "/api/things", lambda **_: [], role=roles)

    def post(path, who):
        return call(api, request(path, "POST", headers={"x-test-who": who}, body={}))[0]

    assert post("/api/things/a/reset", "sup") == 200 and post("/api/things/b/reset", "token") == 200
    assert post("/api/self-audited", "sup") == 200  # writes its own rows
    assert post("/api/things/c/reset", "1001") == 200  # an agent's own desk actions are events, not audit
    assert post("/api/broken", "sup") == 500  # nothing happened: nothing to audit
    assert call(api, request("/api/things", headers={"x-test-who": "sup"}))[0] == 200  # reads are not actions
    assert actions == [("supervisor:sam", "POST", "/api/things/a/reset"),
                       ("admin:api-token", "POST", "/api/things/b/reset")]
