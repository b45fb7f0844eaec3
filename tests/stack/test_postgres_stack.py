"""The whole engine on a real PostgreSQL server (a throwaway one, scripts/install provides it)
instead of SQLite: every table it creates there (events, CRM, callbacks, campaigns, staff, audit,
recordings, QA), and a call's trail, its recording and a QA evaluation written to them."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import inspect, make_url, text

from callcenter.storage import make_engine
from callcenter.web.auth import StaffUsers
from tests.stack.conftest import new_caller
from tests.stack.desktop_client import AgentDesktop

TABLES = {"events", "crm_customers", "crm_interactions", "callbacks", "campaigns", "campaign_contacts", "dnc_numbers",
          "agent_credentials", "staff_users", "audit_log", "recordings", "qa_evaluations"}


def own_schema(url: str) -> str:
    """The server's URL with a search path of its own (the session shares one server)."""
    schema = f"s{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def test_the_engine_keeps_everything_on_postgresql(engine_with_routing, postgres_url, phones):
    engine = engine_with_routing(None, database_url=own_schema(postgres_url))
    assert engine.db.dialect.name == "postgresql"
    assert TABLES <= set(inspect(engine.db).get_table_names()), set(inspect(engine.db).get_table_names())

    StaffUsers(engine.db).add("quinn", "qa", "pw-quinn-secret")
    phones("1001", mode="answer", ring_delay_ms=300, talk_ms=1500)
    engine.login("1001", "support")
    result = new_caller("2", "13911110071", hold_ms=6000).run_sync(60)
    assert result.ok, result.describe()
    call_id = engine.call_id_for("13911110071")
    assert engine.wait_for_event("answered", call_id=call_id)["agent_id"] == "1001"
    engine.wait_for_event("ended", call_id=call_id)

    qa = AgentDesktop(f"http://127.0.0.1:{engine.settings.web_port}")
    qa.call("POST", "/api/staff/login", {"username": "quinn", "password": "pw-quinn-secret"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not qa.call("GET", f"/api/recordings?call={call_id}")["recordings"]:
        time.sleep(0.3)
    (recording,) = qa.call("GET", f"/api/recordings?call={call_id}")["recordings"]
    assert recording["agent_id"] == "1001" and recording["duration"] > 1
    form = qa.call("GET", "/api/qa/forms/default")
    answers = {q["id"]: (True if q["kind"] == "yes_no" else q["max"]) for s in form["sections"] for q in s["questions"]}
    stored = qa.call("POST", "/api/qa/evaluations", {"call_id": call_id, "form": "default", "answers": answers})
    assert stored["total"] == 100.0

    with engine.db.connect() as conn:
        kinds = [r[0] for r in conn.execute(text("SELECT kind FROM events WHERE call_id = :c ORDER BY id"), {"c": call_id})]
        audited = conn.execute(text("SELECT actor, action FROM audit_log WHERE target = :t"),
                               {"t": f"call:{call_id}"}).all()
        scored = conn.execute(text("SELECT evaluator, total FROM qa_evaluations WHERE call_id = :c"), {"c": call_id}).all()
    assert kinds[0] == "call_arrived" and "answered" in kinds and "ended" in kinds
    assert [tuple(r) for r in audited] == [("qa:quinn", "qa_evaluated")]
    assert [tuple(r) for r in scored] == [("quinn", 100.0)]
