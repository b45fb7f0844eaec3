"""The QA endpoints through the real JsonApi router (Twisted's test request, the async handlers
run on an asyncio loop), with a real SQLite store and audit log; and the static page they serve."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twisted.web import server
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from callcenter.audit import AuditLog
from callcenter.qa import web as qa_web
from callcenter.qa.forms import load_forms
from callcenter.qa.store import QaStore
from callcenter.qa.web import QaApi
from callcenter.storage import make_engine
from callcenter.web.api import JsonApi
from callcenter.web.auth import Identity, Role

PROJECT = Path(__file__).resolve().parents[2]
FORMS = load_forms(PROJECT / "qa_forms")
DEFAULT = FORMS["default"]
CALLS = {"c-1001": {"agent_id": "1001", "queue": "support"}, "c-1002": {"agent_id": "1002", "queue": "sales"},
         "c-1003": {"agent_id": "1003", "queue": "support"}, "c-ivr": {"agent_id": None, "queue": None}}
TEAMS = {"1001": "blue", "1002": "blue"}
DAY = 1_709_251_200.0  # 2024-03-01T00:00:00Z
WHO = {"qa": Identity(Role.QA, username="alice"), "supervisor": Identity(Role.SUPERVISOR, username="sam"),
       "admin": Identity(Role.ADMIN, username="ada"), "token": Identity(Role.ADMIN),
       "agent": Identity(Role.AGENT, agent_id="1001")}


@pytest.fixture
def clock():
    return [DAY + 3600]


@pytest.fixture
def app(tmp_path, clock):
    engine = make_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    store = QaStore(engine, clock=lambda: clock[0])
    audit = AuditLog(engine, clock=lambda: clock[0])
    api = JsonApi(allowed_hosts={"127.0.0.1:8080"},
                  identify=lambda req: WHO.get(req.getHeader("x-test-who") or ""))
    qa = QaApi(store, lambda: FORMS, CALLS.get, lambda: TEAMS, audit)
    qa.register(api)
    return api, store, audit


def request(path: str, method: str = "GET", who: str | None = "qa", body: object = None) -> DummyRequest:
    path, _, query = path.partition("?")
    req = DummyRequest(path.strip("/").split("/"))
    req.path = path.encode()
    req.method = method.encode()
    req._disconnected = False  # JsonApi looks at it when an async handler finishes
    for name, value in parse_qsl(query, keep_blank_values=True):
        req.addArg(name.encode(), value.encode())
    req.requestHeaders.setRawHeaders("host", ["127.0.0.1:8080"])
    if who:
        req.requestHeaders.setRawHeaders("x-test-who", [who])
    if body is not None:
        req.requestHeaders.setRawHeaders("content-type", ["application/json"])
        req.content = io.BytesIO(json.dumps(body).encode())
    return req


def call(api: JsonApi, path: str, method: str = "GET", who: str | None = "qa",
         body: object = None) -> tuple[int, object]:
    req = request(path, method, who, body)

    async def answer() -> bytes:
        written = api.render(req)
        if written is not server.NOT_DONE_YET:
            return written
        while not req.finished:
            await asyncio.sleep(0.001)
        return b"".join(req.written)

    raw = asyncio.run(asyncio.wait_for(answer(), 10))
    return req.responseCode or 200, json.loads(raw)


def full_marks() -> dict:
    return {q.id: True if q.kind == "yes_no" else q.max for q in DEFAULT.questions}


def evaluate(api: JsonApi, call_id: str = "c-1001", who: str = "qa", **changes) -> tuple[int, dict]:
    body = {"call_id": call_id, "form": "default", "answers": full_marks(), **changes}
    return call(api, "/api/qa/evaluations", "POST", who, body)


# ---------------------------------------------------------------------------- who may call what
READ_ROUTES = ["/api/qa/forms", "/api/qa/forms/default", "/api/qa/evaluations", "/api/qa/scores"]


@pytest.mark.parametrize("path", READ_ROUTES)
@pytest.mark.parametrize("who, status", [(None, 401), ("agent", 403), ("qa", 200), ("supervisor", 200),
                                         ("admin", 200), ("token", 200)])
def test_qa_staff_and_supervisors_read(app, path, who, status):
    code, body = call(app[0], path, who=who)
    assert code == status, body


@pytest.mark.parametrize("who, status", [(None, 401), ("agent", 403), ("supervisor", 403), ("qa", 200),
                                         ("admin", 200), ("token", 200)])
def test_only_qa_analysts_and_admins_score_calls(app, who, status):
    code, body = evaluate(app[0], who=who)
    assert code == status, body


# ---------------------------------------------------------------------------- forms
def test_forms_are_listed_with_their_questions_and_fingerprint(app):
    code, forms = call(app[0], "/api/qa/forms")
    assert code == 200 and [f["name"] for f in forms] == ["default"]
    assert forms[0]["fingerprint"] == DEFAULT.fingerprint and forms[0]["title"] == DEFAULT.title
    first = forms[0]["sections"][0]
    assert set(first) == {"id", "title", "weight", "questions"}
    assert set(first["questions"][0]) == {"id", "text", "weight", "kind", "max", "allow_na", "critical"}
    assert call(app[0], "/api/qa/forms/default")[1] == forms[0]
    code, body = call(app[0], "/api/qa/forms/nope")
    assert code == 404 and "nope" in body["error"]


# ---------------------------------------------------------------------------- scoring a call
def test_an_evaluation_is_scored_stored_and_audited(app, clock):
    api, store, audit = app
    answers = {**full_marks(), "identity_verified": "na", "tone": 4}
    code, stored = evaluate(api, answers=answers, comment="Good call.")
    assert code == 200, stored
    assert stored["total"] < 100.0 and stored["sections"]["communication"] < 100.0
    assert {k: stored[k] for k in ("call_id", "agent_id", "queue", "team", "form", "form_fingerprint", "evaluator",
                                   "answers", "critical_failed", "comment", "created_at")} == {
        "call_id": "c-1001", "agent_id": "1001", "queue": "support", "team": "blue", "form": "default",
        "form_fingerprint": DEFAULT.fingerprint, "evaluator": "alice", "answers": answers, "critical_failed": [],
        "comment": "Good call.", "created_at": clock[0]}
    assert store.get(stored["id"]) == stored
    [entry] = audit.entries()
    assert (entry.actor, entry.action, entry.target) == ("qa:alice", "qa_evaluated", "call:c-1001")
    assert entry.details == {"evaluation_id": stored["id"], "total": stored["total"]}


def test_the_api_token_scores_as_api_token_and_a_critical_miss_scores_zero(app):
    code, stored = evaluate(app[0], "c-1003", who="token", answers={**full_marks(), "respectful": False},
                            comment="")
    assert code == 200, stored
    assert (stored["evaluator"], stored["team"], stored["comment"]) == ("api-token", None, None)
    assert (stored["total"], stored["critical_failed"]) == (0.0, ["respectful"])
    assert app[2].entries()[0].actor == "admin:api-token"


@pytest.mark.parametrize("changes, status, field, message", [
    ({"answers": {**full_marks(), "tone": 9}}, 400, "answers.tone", "answers.tone: answer a whole number from 0 to 5"),
    ({"answers": {**full_marks(), "made_up": True}}, 400, "answers.made_up", "has no such question"),
    ({"answers": {k: v for k, v in full_marks().items() if k != "recap"}}, 400, "answers.recap", "not answered"),
    ({"answers": [1, 2]}, 400, "answers", "give an object"),
    ({"call_id": "c-unknown"}, 404, "call_id", "no recorded call c-unknown"),
    ({"call_id": ""}, 400, "call_id", "call_id"),
    ({"call_id": "c-ivr"}, 409, "call_id", "not answered by an agent"),
    ({"form": "nope"}, 404, "form", "no evaluation form 'nope'"),
    ({"form": None}, 404, "form", "no evaluation form"),
    ({"comment": 42}, 400, "comment", "at most 4000 characters"),
    ({"comment": "x" * 4001}, 400, "comment", "at most 4000 characters"),
    ({"score": 100}, 400, "score", "score: unknown field"),
])
def test_refused_evaluations_say_which_field_and_store_nothing(app, changes, status, field, message):
    api, store, audit = app
    code, body = evaluate(api, **changes)
    assert (code, body["field"]) == (status, field), body
    assert message in body["error"]
    assert store.list() == [] and audit.entries() == []


# ---------------------------------------------------------------------------- reading them back
def test_evaluations_are_listed_by_agent_call_and_period(app, clock):
    api = app[0]
    ids = {}
    for call_id, moment in [("c-1001", DAY - 60), ("c-1002", DAY + 60), ("c-1001", DAY + 86400)]:
        clock[0] = moment
        ids[(call_id, moment)] = evaluate(api, call_id)[1]["id"]

    def listed(query: str) -> list[int]:
        code, body = call(api, "/api/qa/evaluations" + query, who="supervisor")
        assert code == 200, body
        return [row["id"] for row in body["evaluations"]]

    assert listed("") == [ids[("c-1001", DAY + 86400)], ids[("c-1002", DAY + 60)], ids[("c-1001", DAY - 60)]]
    assert listed("?agent=1002") == [ids[("c-1002", DAY + 60)]]
    assert listed("?call=c-1001&agent=") == [ids[("c-1001", DAY + 86400)], ids[("c-1001", DAY - 60)]]
    assert listed("?from=2024-03-01&to=2024-03-01") == [ids[("c-1002", DAY + 60)]], "a date in 'to' is included"
    assert listed(f"?from={DAY + 60:.0f}&to={DAY + 86400:.0f}") == [ids[("c-1002", DAY + 60)]], "epoch seconds"
    assert listed("?to=2024-03-01T00:00:00%2B00:00") == [ids[("c-1001", DAY - 60)]]
    assert listed("?from=2024-03-01&tz=Asia/Shanghai") == listed(f"?from={DAY - 8 * 3600:.0f}")


@pytest.mark.parametrize("query, field", [("from=yesterday", "from"), ("to=2024-13-01", "to"), ("from=nan", "from"),
                                          ("tz=Mars/Olympus", "tz"), ("agnet=1001", "agnet")])
@pytest.mark.parametrize("path", ["/api/qa/evaluations", "/api/qa/scores"])
def test_bad_query_values_are_refused_by_name(app, path, query, field):
    code, body = call(app[0], f"{path}?{query}")
    assert (code, body["field"]) == (400, field), body
    assert body["error"].startswith(field)


def test_scores_roll_up_the_period(app, clock):
    api = app[0]
    clock[0] = DAY - 60  # before the period
    evaluate(api, "c-1002", answers={**full_marks(), "respectful": False})
    clock[0] = DAY + 60
    evaluate(api, "c-1001")
    evaluate(api, "c-1002", answers={**full_marks(), "respectful": False})
    evaluate(api, "c-1003")
    code, scores = call(api, "/api/qa/scores?from=2024-03-01&to=2024-03-01", who="supervisor")
    assert code == 200, scores
    assert (scores["from"], scores["to"]) == (DAY, DAY + 86400)
    assert [(a["agent_id"], a["team"], a["evaluations"], a["average"], a["critical_failures"])
            for a in scores["agents"]] == [("1001", "blue", 1, 100.0, 0), ("1002", "blue", 1, 0.0, 1),
                                           ("1003", "(none)", 1, 100.0, 0)]
    assert [(t["team"], t["agents"], t["evaluations"], t["average"]) for t in scores["teams"]] == [
        ("blue", 2, 2, 50.0), ("(none)", 1, 1, 100.0)]
    assert call(api, "/api/qa/scores")[1]["agents"][1]["evaluations"] == 2, "no period: every evaluation"


# ---------------------------------------------------------------------------- the page
def page(name: bytes) -> DummyRequest:
    req = DummyRequest([name])
    resource = getChildForRequest(QaApi(None, dict, dict, dict, None).pages()[b"qa"], req)
    assert resource.render(req) == 1  # static.File writes the file itself
    return req


def test_the_page_is_served_with_a_strict_content_security_policy():
    for name, kind in [(b"", b"text/html"), (b"qa.js", b"javascript"), (b"qa.css", b"text/css")]:
        req = page(name)
        assert kind in req.responseHeaders.getRawHeaders(b"content-type")[0]
        policy = req.responseHeaders.getRawHeaders(b"content-security-policy")[0]
        assert b"script-src 'self'" in policy and b"unsafe" not in policy
    assert b'<script src="qa.js">' in b"".join(page(b"").written)


def test_the_page_has_no_inline_script_and_never_parses_data_as_html():
    html = (qa_web.STATIC_DIR / "index.html").read_text()
    script = (qa_web.STATIC_DIR / "qa.js").read_text()
    assert re.findall(r"<script[^>]*>", html) == ['<script src="qa.js">'], "scripts come from files only"
    assert not re.search(r"\son[a-z]+=", html) and "style=" not in html, "no inline handlers or styles (CSP)"
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in script


@pytest.mark.parametrize("testid", ["login-username", "login-password", "login-submit", "recording-row", "audio",
                                    "form-select", "submit-evaluation", "score-total", "scores-agent-row",
                                    "scores-team-row"])
def test_the_elements_a_browser_test_drives_are_marked(testid):
    html = (qa_web.STATIC_DIR / "index.html").read_text()
    script = (qa_web.STATIC_DIR / "qa.js").read_text()
    assert f'data-testid="{testid}"' in html or f'"data-testid": "{testid}"' in script


def test_question_inputs_are_marked_with_their_question_id():
    script = (qa_web.STATIC_DIR / "qa.js").read_text()
    assert "const testid = `question-${question.id}`;" in script
    assert script.count('"data-testid": testid') == 2, "the radio buttons and the scale's select"
