"""The supervisor's and the ops side on the real stack: a supervisor listens to a live call from a
third SIPp phone (ChanSpy through the dialplan), acts on agents with every action audit-logged,
the PCI pause leaves silence in the recording (measured with sox), recordings are played with
range requests and purged by retention, /metrics parses, the served OpenAPI document validates and
matches the routes, and every role is refused every endpoint it was not given."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from callcenter.recording.store import recordings_table
from callcenter.sipp import SippPhone
from callcenter.web.auth import Credentials, StaffUsers
from tests.stack.conftest import new_caller
from tests.stack.desktop_client import AgentDesktop, HttpError
from tests.stack.harness import write_settings

STAFF = {"supervisor": "supervisor", "quinn": "qa", "ada": "admin"}
SUPERVISOR_PHONE_PORT = 5120


def password_of(name: str) -> str:
    return f"pw-{name}-secret"


@pytest.fixture
def floor(engine_with_routing):
    """The engine with staff users "supervisor" (whose phone the default settings put at
    127.0.0.1:5120), quinn (QA) and ada (admin), and desktop passwords for agents 1001 and 1002."""
    engine = engine_with_routing(None, ring_timeout=10)
    users = StaffUsers(engine.db)
    for name, role in STAFF.items():
        users.add(name, role, password_of(name))
    credentials = Credentials(engine.db)
    for agent_id in ("1001", "1002"):
        credentials.set_password(agent_id, password_of(agent_id))
    return engine


def client(engine) -> AgentDesktop:
    return AgentDesktop(f"http://127.0.0.1:{engine.settings.web_port}")


def staff(engine, name: str) -> AgentDesktop:
    session = client(engine)
    assert session.call("POST", "/api/staff/login", {"username": name, "password": password_of(name)})["role"] == STAFF[name]
    return session


def agent_desk(engine, agent_id: str) -> AgentDesktop:
    session = client(engine)
    session.call("POST", "/api/desktop/login", {"agent_id": agent_id, "password": password_of(agent_id)})
    return session


def supervisor_phone(tmp_path, **kwargs) -> SippPhone:
    # the endpoint is "supervisor-supervisor"; the phone's own user name does not matter to Asterisk
    phone = SippPhone("supervisor-supervisor", sip_port=SUPERVISOR_PHONE_PORT, media_port=7400, workdir=tmp_path / "sup",
                      **kwargs)
    phone.start()
    return phone


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


# ---------------------------------------------------------------------------- listen, act, audit
def test_a_supervisor_listens_to_a_live_call_on_their_own_phone_and_every_action_is_audited(
        floor, phones, asterisk, tmp_path):
    engine, since = floor, time.time()  # the audit log is the session's: this test's rows only
    phones("1001", mode="answer", ring_delay_ms=500, talk_ms=15000)
    sup_phone = supervisor_phone(tmp_path, mode="answer", ring_delay_ms=300, talk_ms=4000)
    try:
        engine.login("1001", "support")
        sam = staff(engine, "supervisor")
        with ThreadPoolExecutor(1) as pool:
            caller = pool.submit(new_caller("2", "13911110001", hold_ms=16000).run_sync, 60)
            call_id = engine.call_id_for("13911110001")
            engine.wait_for_event("answered", call_id=call_id, agent_id="1001")

            ringing = sam.call("POST", "/api/supervisor/agents/1001/spy", {"mode": "listen"})
            assert ringing["call_id"] == call_id and ringing["phone"] == "supervisor-supervisor"
            started = engine.wait_for_event("spy_started", agent_id="1001")
            assert started["data"] == {"mode": "listen", "supervisor": "supervisor"} and started["call_id"] == call_id
            # the spy leg is up in Asterisk, running ChanSpy on the agent's channel
            channels = wait_until(lambda: (out := asterisk.cli("core show channels verbose")) and
                                  "ChanSpy" in out and out, 5, "a ChanSpy channel")
            assert re.search(r"PJSIP/supervisor-supervisor-\S+\s+cc-spy .*ChanSpy\s+PJSIP/agent1001-,qEd", channels)
            wait_until(lambda: sup_phone.answered_calls() == 1, 5, "the supervisor's phone answered")

            # refused, with the reason: a mode that does not exist, an agent not on a call
            with pytest.raises(HttpError) as bad_mode:
                sam.call("POST", "/api/supervisor/agents/1001/spy", {"mode": "record"})
            assert bad_mode.value.status == 400 and bad_mode.value.body["field"] == "mode"
            with pytest.raises(HttpError) as idle:
                sam.call("POST", "/api/supervisor/agents/1002/spy", {"mode": "barge"})
            assert idle.value.status == 409
            result = caller.result()
        assert result.ok, result.describe()

        # agent control from the floor: pause with a reason, live skills, unpause
        engine.login("1002", "support")
        paused = sam.call("POST", "/api/supervisor/agents/1002/pause", {"reason": "coaching"})
        assert paused["state"] == "paused" and paused["reason"].startswith("coaching")
        with pytest.raises(HttpError) as bad_skill:
            sam.call("POST", "/api/supervisor/agents/1002/skills", {"skills": {"bilingual": 5}})
        assert bad_skill.value.status == 400 and bad_skill.value.body["field"] == "skills.bilingual"
        skilled = sam.call("POST", "/api/supervisor/agents/1002/skills", {"skills": {"billing": 6, "lang.zh": 9}})
        assert skilled["skills"] == {"billing": 6, "lang.zh": 9}
        assert sam.call("POST", "/api/supervisor/agents/1002/unpause", {})["state"] == "available"
    finally:
        sup_phone.stop()

    audit = sam.call("GET", f"/api/audit?actor=supervisor:supervisor&since={since}")["entries"]
    done = [(e["actor"], e["action"], e["target"]) for e in reversed(audit)]
    assert done == [("supervisor:supervisor", "spy_listen", "agent:1001"), ("supervisor:supervisor", "agent_pause", "agent:1002"),
                    ("supervisor:supervisor", "agent_skills_changed", "agent:1002"),
                    ("supervisor:supervisor", "agent_unpause", "agent:1002")], done
    skills_entry = next(e for e in audit if e["action"] == "agent_skills_changed")
    assert skills_entry["details"]["after"] == {"billing": 6, "lang.zh": 9}
    assert all(abs(e["ts"] - time.time()) < 120 for e in audit)
    # QA staff may not act on the floor, and it is not audited as if they had
    with pytest.raises(HttpError) as refused:
        staff(engine, "quinn").call("POST", "/api/supervisor/agents/1002/pause", {"reason": "break"})
    assert refused.value.status == 403
    assert sam.call("GET", f"/api/audit?actor=qa:quinn&since={since}")["entries"] == []
    # what the API token did on the floor is in the log too (generic rows for routes without their own)
    logins = sam.call("GET", f"/api/audit?actor=admin:api-token&target=/api/agents/1002/login&since={since}")
    assert [e["action"] for e in logins["entries"]] == ["api_post"]


def test_a_supervisor_moves_a_waiting_call_and_raises_another_callers_priority(floor, phones):
    engine, since = floor, time.time()
    sam = staff(engine, "supervisor")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(new_caller("1", "13911110011", hold_ms=14000).run_sync, 60)  # sales
        time.sleep(0.5)
        second = pool.submit(new_caller("1", "13911110012", hold_ms=14000).run_sync, 60)  # sales, after
        first_id, second_id = engine.call_id_for("13911110011"), engine.call_id_for("13911110012")
        engine.wait_for_event("queued", call_id=second_id)
        assert sam.call("POST", f"/api/supervisor/calls/{second_id}/priority", {"priority": 3})["priority"] == 3
        moved = sam.call("POST", f"/api/supervisor/calls/{first_id}/move", {"queue": "support"})
        assert moved == {"call_id": first_id, "queue": "support"}
        assert engine.wait_for_event("moved", call_id=first_id)["data"]["by"] == "supervisor:supervisor"
        board = sam.call("GET", "/api/wallboard")
        in_queue = {q["queue"]: [c["call_id"] for c in q["calls"]] for q in board["queues"]}
        assert first_id in in_queue["support"] and first_id not in in_queue["sales"]
        # an agent serving support only takes the moved call
        phones("1001", mode="answer", ring_delay_ms=300, talk_ms=1500)
        engine.login("1001", "support")
        assert engine.wait_for_event("answered", call_id=first_id)["agent_id"] == "1001"
        first.result(), second.result()
    audit = sam.call("GET", f"/api/audit?actor=supervisor:supervisor&since={since}")["entries"]
    assert [e["action"] for e in audit] == ["call_moved", "call_priority_changed"]


# ---------------------------------------------------------------------------- PCI pause, recordings
def sox_stat(path, start: float, length: float) -> dict[str, float]:
    out = subprocess.run(["sox", str(path), "-n", "trim", f"{start:.3f}", f"{length:.3f}", "stat"],
                         capture_output=True, text=True, timeout=30, check=True).stderr
    return {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^([A-Za-z ()]+):\s+(-?[0-9.]+)", out, re.M)}


def test_pci_pause_leaves_silence_in_the_recording_and_playback_is_ranged_and_audited(floor, phones, asterisk):
    engine = floor
    # the agent's phone talks (Debian's g711a.pcap: speech from 0.4 s to 4.7 s after it answers)
    phones("1001", mode="answer", ring_delay_ms=300, talk_ms=6000)
    desk = agent_desk(engine, "1001")
    desk.call("POST", "/api/desktop/ready")
    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(new_caller("2", "13911110021", hold_ms=20000).run_sync, 60)
        call_id = engine.call_id_for("13911110021")
        engine.wait_for_event("answered", call_id=call_id)
        bridged = wait_until(lambda: [r for r in engine.events(call_id) if r["kind"] == "answered"], 5, "answered")[0]
        time.sleep(max(0.0, bridged["ts"] + 1.6 - time.time()))
        assert desk.call("POST", "/api/desktop/recording/pause")["recording_paused"] is True
        with pytest.raises(HttpError) as twice:
            desk.call("POST", "/api/desktop/recording/pause")
        assert twice.value.status == 409
        time.sleep(max(0.0, bridged["ts"] + 3.0 - time.time()))
        assert desk.call("POST", "/api/desktop/recording/resume")["recording_paused"] is False
        caller.result()
    engine.wait_for_event("ended", call_id=call_id)
    assert engine.wait_for_event("recording_resumed", call_id=call_id)["data"]["how"] == "resumed"

    sam = staff(engine, "supervisor")
    found = wait_until(lambda: sam.call("GET", f"/api/recordings?call={call_id}")["recordings"], 10,
                       "the recording indexed")
    (recording,) = found
    assert recording["agent_id"] == "1001" and recording["queue"] == "support"
    assert recording["customer"] == "13911110021" and recording["duration"] > 4
    ((paused_at, resumed_at),) = recording["pci_spans"]
    assert 1.3 < paused_at < 2.2 and 1.1 < resumed_at - paused_at < 1.8, recording["pci_spans"]

    path = engine.settings.asterisk_root / "var/lib/callcenter" / engine.settings.asterisk_instance / "recordings" \
        / recording["file"]
    if not path.exists():  # the instance's recordings folder, as the engine sees it
        from callcenter.asterisk.process import AsteriskInstance
        path = AsteriskInstance(engine.settings).recordings_dir / recording["file"]
    silent = sox_stat(path, paused_at + 0.2, resumed_at - paused_at - 0.4)
    before = sox_stat(path, 0.6, paused_at - 0.8)
    after = sox_stat(path, resumed_at + 0.2, 1.0)
    assert silent["Maximum amplitude"] < 0.002, f"audio in the PCI-paused span: {silent}"
    assert before["RMS     amplitude"] > 0.01 and after["RMS     amplitude"] > 0.01, (before, after)

    # playback: a range request answers 206 with just those bytes; it is audit-logged
    request = urllib.request.Request(f"{sam.base_url}/api/recordings/{recording['id']}/audio",
                                     headers={"Range": "bytes=0-99"})
    with sam.opener.open(request, timeout=5) as response:
        assert response.status == 206 and response.headers["content-range"].startswith("bytes 0-99/")
        assert response.read() == path.read_bytes()[:100]
    played = sam.call("GET", f"/api/audit?action=recording_played&target=recording:{recording['id']}")["entries"]
    assert [e["actor"] for e in played] == ["supervisor:supervisor"]
    # export is its own permission: supervisors may play back but not download
    with pytest.raises(urllib.error.HTTPError) as no_export:
        sam.opener.open(f"{sam.base_url}/api/recordings/{recording['id']}/download", timeout=5)
    assert no_export.value.code == 403


def test_retention_purge_removes_old_files_and_rows_together(floor, phones, stack_dir):
    engine = floor
    phones("1001", mode="answer", ring_delay_ms=300, talk_ms=1500)
    engine.login("1001")
    for number, key in (("13911110031", "2"), ("13911110032", "1")):  # support, then sales
        result = new_caller(key, number, hold_ms=6000).run_sync(60)
        assert result.ok, result.describe()
    ids = [engine.call_id_for(n) for n in ("13911110031", "13911110032")]
    sam = staff(engine, "supervisor")
    rows = {i: wait_until(lambda i=i: sam.call("GET", f"/api/recordings?call={i}")["recordings"], 10, "indexed")[0]
            for i in ids}
    with engine.db.begin() as conn:  # both recordings are 40 days old
        conn.execute(update(recordings_table).where(recordings_table.c.call_id.in_(ids))
                     .values(started_at=time.time() - 40 * 86400))
    from callcenter.asterisk.process import AsteriskInstance
    folder = AsteriskInstance(engine.settings).recordings_dir
    files = {i: folder / rows[i]["file"] for i in ids}
    assert all(f.exists() for f in files.values())

    config = write_settings(stack_dir / "purge.yaml", **{**Settings_of(engine),
                            "recordings": {"retention": {"default_days": 90, "queues": {"support": 30}}}})
    out = subprocess.run([".venv/bin/python", "-m", "callcenter", "--config", str(config), "recordings", "purge"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "support" in out.stdout and "1" in out.stdout, out.stdout
    assert not files[ids[0]].exists() and files[ids[1]].exists()  # support: 30 days; sales: the default 90
    assert sam.call("GET", f"/api/recordings?call={ids[0]}")["recordings"] == []
    assert sam.call("GET", f"/api/recordings?call={ids[1]}")["total"] == 1


def Settings_of(engine) -> dict:
    """The engine's own settings file, as a mapping to write a variant of."""
    import yaml
    return yaml.safe_load(engine.config_path.read_text())


# ---------------------------------------------------------------------------- ops surface, roles
def test_metrics_parse_and_count_what_happened(floor, phones):
    engine = floor
    phones("1001", mode="answer", ring_delay_ms=300, talk_ms=1000)
    engine.login("1001")
    assert new_caller("2", "13911110041", hold_ms=4000).run_sync(60).ok
    engine.wait_for_event("ended", call_id=engine.call_id_for("13911110041"))
    sam = staff(engine, "supervisor")
    with sam.opener.open(f"{sam.base_url}/metrics", timeout=5) as response:
        assert response.headers["content-type"].startswith("text/plain")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert value[("callcenter_answered_total", ())] >= 1 and value[("callcenter_offers_total", ())] >= 1
    assert value[("callcenter_calls_waiting", (("queue", "support"),))] == 0
    assert value[("callcenter_ami_up", ())] == 1 and value[("callcenter_agi_up", ())] == 1
    assert value[("callcenter_agents", (("state", "available"),))] + value[("callcenter_agents", (("state", "wrap_up"),))] >= 1
    assert value[("callcenter_agi_connections_total", ())] >= 1
    health = engine.api("GET", "/api/health", token=False)
    assert health["ok"] is True and health["parts"]["database"]["ok"] is True
    assert health["parts"]["redis"] == {"ok": None, "detail": "not configured", "latency_ms": None}


def request_status(opener, method: str, url: str, headers: dict | None = None) -> int:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with opener.open(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def test_every_role_is_refused_every_endpoint_it_was_not_given_and_openapi_matches(floor):
    engine = floor
    base = f"http://127.0.0.1:{engine.settings.web_port}"
    doc = engine.api("GET", "/api/openapi.json", token=False)
    validate(doc)
    operations = [(method.upper(), path, op) for path, item in doc["paths"].items()
                  for method, op in item.items() if method in ("get", "post")]
    assert len(operations) > 60, "the document lists the engine's routes"

    anonymous = urllib.request.build_opener()
    token = {"authorization": f"Bearer {(engine.settings.data_dir / 'api-token').read_text().strip()}"}
    callers = {"nobody": (anonymous, {}), "agent": (agent_desk(engine, "1001").opener, {}),
               "supervisor": (staff(engine, "supervisor").opener, {}), "qa": (staff(engine, "quinn").opener, {}),
               "admin": (staff(engine, "ada").opener, {}), "api-token": (anonymous, token)}
    role_of = {"nobody": None, "agent": "agent", "supervisor": "supervisor", "qa": "qa", "admin": "admin",
               "api-token": "admin"}
    refused, checked = [], 0
    for method, path, op in operations:
        allowed = set(op["x-roles"])
        url = base + re.sub(r"\{[^}]+\}", "x1", path)
        for name, (opener, headers) in callers.items():
            role = role_of[name]
            if "public" in allowed or role in allowed:
                continue
            status = request_status(opener, method, url, headers)
            checked += 1
            if status != (401 if role is None else 403):
                refused.append((name, method, path, status))
    assert not refused, f"served to a role not allowed: {refused}"
    assert checked > 200

    # every documented GET is served to a role it names (no 404 "no such endpoint", no 405, no
    # refusal), and a path the document does not list is not served
    for method, path, op in operations:
        if "{" in path or method != "GET":
            continue
        name = next(n for n, role in role_of.items() if "public" in op["x-roles"] or role in op["x-roles"])
        opener, headers = callers[name]
        status = request_status(opener, method, base + path, headers)
        assert status not in (404, 405, 401, 403), (name, method, path, status)
    assert request_status(anonymous, "GET", base + "/api/not-a-route", token) == 404
