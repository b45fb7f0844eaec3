"""/api/recordings through the real JsonApi router with Twisted's DummyRequest: who may search,
play, export and purge (playback and export roles come from the settings), the audit rows written
before a file is sent (playback de-duplicated per person and recording for 60 s), 400s naming the
bad field, and the file answered with HTTP Range support."""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from callcenter.recording.model import RecordingPermissions, RecordingsSettings, RetentionPolicy
from callcenter.recording.web import RecordingApi
from callcenter.web.api import JsonApi
from callcenter.web.auth import Identity, Role
from tests.unit.test_recording_store import DAY, NOW, Setup

WHO = {"agent": Identity(Role.AGENT, "1001"), "supervisor": Identity(Role.SUPERVISOR, username="sue"),
       "qa": Identity(Role.QA, username="quinn"), "admin": Identity(Role.ADMIN, username="ada"),
       "token": Identity(Role.ADMIN)}


class Web:
    def __init__(self, tmp_path: Path, permissions: RecordingPermissions):
        self.setup = Setup(tmp_path, RecordingsSettings(retention=RetentionPolicy(default_days=30),
                                                        permissions=permissions))
        self.now = [1000.0]
        self.recordings = RecordingApi(self.setup.service, permissions, time_zone="Asia/Shanghai",
                                       clock=lambda: self.now[0])
        self.api = JsonApi(allowed_hosts={"127.0.0.1:8080"},
                           identify=lambda req: WHO.get(req.getHeader("x-test-who") or ""))
        self.recordings.register(self.api)

    def request(self, path: str, who: str | None, *, method: str = "GET", query: dict | None = None,
                headers: dict | None = None, body: dict | None = None) -> tuple[int, bytes, DummyRequest]:
        req = DummyRequest(path.strip("/").split("/"))
        req.path, req.method = path.encode(), method.encode()
        req._disconnected = False
        req.args = {k.encode(): [str(v).encode()] for k, v in (query or {}).items()}
        for name, value in {"host": "127.0.0.1:8080", "x-test-who": who or "", **(headers or {})}.items():
            req.requestHeaders.setRawHeaders(name, [value])
        if body is not None:
            req.requestHeaders.setRawHeaders("content-type", ["application/json"])
            req.content = io.BytesIO(json.dumps(body).encode())

        async def answer() -> bytes:
            result = self.api.render(req)
            if result is not NOT_DONE_YET:
                return result
            deadline = time.monotonic() + 5
            while not req.finished and time.monotonic() < deadline:
                await asyncio.sleep(0.001)  # the handler's database work runs in a thread
            assert req.finished, f"{path} never finished"
            return b"".join(req.written)

        data = asyncio.run(answer())
        return req.responseCode or 200, data, req

    def json(self, path: str, who: str | None, **kwargs) -> tuple[int, object]:
        code, data, _ = self.request(path, who, **kwargs)
        return code, json.loads(data)

    def audit(self, action: str) -> list[tuple[str, str, dict]]:
        return [(e.actor, e.target, e.details) for e in reversed(self.setup.audit.entries(action=action))]


@pytest.fixture
def web(tmp_path: Path) -> Web:
    web = Web(tmp_path, RecordingPermissions(playback=["qa", "admin"], export=["supervisor"]))
    web.setup.recorded("call-1", seconds=2.0, agent_id="1001", queue="support", age_days=1)
    web.setup.recorded("call-2", seconds=1.0, agent_id="1002", queue="sales", age_days=40,
                       customer="+14155550100", customer_name="Ann Lee")
    return web


# ---- who may do what -----------------------------------------------------------------------------
@pytest.mark.parametrize("path, allowed", [
    ("/api/recordings", {"supervisor", "qa", "admin", "token"}),
    ("/api/recordings/call-1", {"supervisor", "qa", "admin", "token"}),
    ("/api/recordings/call-1/audio", {"qa", "admin", "token"}),  # playback: qa, admin
    ("/api/recordings/call-1/download", {"supervisor"}),  # export: supervisor only
])
def test_every_route_serves_only_its_roles(web: Web, path: str, allowed: set[str]):
    for who in (None, *WHO):
        code, _, _ = web.request(path, who)
        expected = 401 if who is None else 200 if who in allowed else 403
        assert code == expected, (who, path)


def test_only_admins_purge(web: Web):
    for who, expected in ((None, 401), ("agent", 403), ("supervisor", 403), ("qa", 403), ("admin", 200)):
        code, _ = web.json("/api/recordings/purge", who, method="POST", body={"dry_run": True})
        assert code == expected, who


def test_default_permissions_let_staff_play_and_only_admins_export(tmp_path: Path):
    web = Web(tmp_path, RecordingPermissions())
    web.setup.recorded("c1", seconds=1.0)
    assert [web.request("/api/recordings/c1/audio", who)[0] for who in ("supervisor", "qa", "admin")] == [200] * 3
    assert [web.request("/api/recordings/c1/download", who)[0] for who in ("supervisor", "qa", "admin")] == \
        [403, 403, 200]


# ---- search and details --------------------------------------------------------------------------
def test_search_answers_rows_and_the_total(web: Web):
    code, body = web.json("/api/recordings", "qa")
    assert code == 200 and body["total"] == 2
    assert [r["id"] for r in body["recordings"]] == ["call-1", "call-2"]
    assert body["recordings"][1]["customer_name"] == "Ann Lee" and body["recordings"][1]["duration"] == 1.0
    assert web.json("/api/recordings", "qa", query={"customer": "ann"})[1]["total"] == 1
    assert web.json("/api/recordings", "qa", query={"agent": "1002", "queue": "sales"})[1]["total"] == 1
    assert web.json("/api/recordings", "qa", query={"call": "call-1"})[1]["recordings"][0]["id"] == "call-1"
    page = web.json("/api/recordings", "qa", query={"limit": 1, "offset": 1})[1]
    assert ([r["id"] for r in page["recordings"]], page["total"]) == (["call-2"], 2)
    since = web.json("/api/recordings", "qa", query={"from": NOW - 2 * DAY})[1]
    assert [r["id"] for r in since["recordings"]] == ["call-1"]
    until = web.json("/api/recordings", "qa", query={"to": "2020-01-01"})[1]
    assert until == {"recordings": [], "total": 0}


def test_times_without_an_offset_are_read_in_the_configured_zone(web: Web):
    started = web.setup.store.get("call-1").started_at
    an_hour_before = datetime.fromtimestamp(started - 3600, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")
    # read as UTC it would be eight hours later, after call-1 started
    body = web.json("/api/recordings", "qa", query={"from": an_hour_before})[1]
    assert [r["id"] for r in body["recordings"]] == ["call-1"]


@pytest.mark.parametrize("field, value", [("from", "last week"), ("to", "2024-02-30"), ("limit", "0"),
                                          ("limit", "501"), ("limit", "ten"), ("offset", "-1")])
def test_bad_search_parameters_are_400_naming_the_field(web: Web, field: str, value: str):
    code, body = web.json("/api/recordings", "qa", query={field: value})
    assert code == 400 and body["field"] == field and body["error"].startswith(f"{field}: ")


def test_details_and_unknown_recordings(web: Web):
    code, body = web.json("/api/recordings/call-2", "supervisor")
    assert code == 200 and (body["call_id"], body["queue"], body["pci_spans"]) == ("call-2", "sales", [])
    for path in ("/api/recordings/nope", "/api/recordings/nope/audio"):
        code, body = web.json(path, "admin")
        assert (code, body["error"]) == (404, "no recording nope")


# ---- playback and export -------------------------------------------------------------------------
def test_playback_sends_the_wav_and_is_audited_once_a_minute_per_person(web: Web):
    wav = (web.setup.dir / "call-1.wav").read_bytes()
    code, data, req = web.request("/api/recordings/call-1/audio", "qa")
    assert (code, data) == (200, wav)
    # static.File types the file by its extension (audio/x-wav); DummyRequest keeps the JSON type too
    assert {"audio/wav", "audio/x-wav"} & set(req.responseHeaders.getRawHeaders("content-type"))
    assert req.responseHeaders.getRawHeaders("content-disposition") is None, "played inline, not downloaded"
    web.now[0] += 59
    web.request("/api/recordings/call-1/audio", "qa", headers={"range": "bytes=1000-"})  # a seek
    web.request("/api/recordings/call-1/audio", "token")
    web.request("/api/recordings/call-2/audio", "qa")
    web.now[0] += 2  # 61 s after the first play
    web.request("/api/recordings/call-1/audio", "qa")
    assert web.audit("recording_played") == [
        ("qa:quinn", "recording:call-1", {"call_id": "call-1"}),
        ("admin:api-token", "recording:call-1", {"call_id": "call-1"}),
        ("qa:quinn", "recording:call-2", {"call_id": "call-2"}),
        ("qa:quinn", "recording:call-1", {"call_id": "call-1"}),
    ]
    assert web.audit("recording_exported") == []


def test_a_range_request_gets_206_with_those_bytes(web: Web):
    wav = (web.setup.dir / "call-1.wav").read_bytes()
    code, data, req = web.request("/api/recordings/call-1/audio", "qa", headers={"range": "bytes=44-1043"})
    assert (code, data) == (206, wav[44:1044])
    assert req.responseHeaders.getRawHeaders("content-range") == [f"bytes 44-1043/{len(wav)}"]
    assert req.responseHeaders.getRawHeaders("accept-ranges") == ["bytes"]


def test_export_downloads_under_the_call_id_and_every_download_is_audited(web: Web):
    code, data, req = web.request("/api/recordings/call-2/download", "supervisor")
    assert (code, data) == (200, (web.setup.dir / "call-2.wav").read_bytes())
    assert req.responseHeaders.getRawHeaders("content-disposition") == ['attachment; filename="call-2.wav"']
    web.request("/api/recordings/call-2/download", "supervisor")
    assert web.audit("recording_exported") == [("supervisor:sue", "recording:call-2", {"call_id": "call-2"})] * 2
    assert web.audit("recording_played") == []


def test_refused_or_missing_files_are_not_audited(web: Web):
    assert web.request("/api/recordings/call-1/audio", "supervisor")[0] == 403
    (web.setup.dir / "call-1.wav").unlink()
    code, body = web.json("/api/recordings/call-1/audio", "qa")
    assert code == 404 and "no longer on disk" in body["error"]
    with web.setup.engine.begin() as conn:
        conn.exec_driver_sql("update recordings set file = '../cc.db' where id = 'call-2'")
    code, body = web.json("/api/recordings/call-2/download", "supervisor")
    assert code == 500 and "outside the recordings folder" in body["error"]
    assert web.audit("recording_played") == web.audit("recording_exported") == []


# ---- purge ---------------------------------------------------------------------------------------
def test_purge_answers_the_report_and_audits_real_purges(web: Web):
    web.setup.service.clock = lambda: NOW
    code, dry = web.json("/api/recordings/purge", "admin", method="POST", body={"dry_run": True})
    assert code == 200 and (dry["dry_run"], dry["removed"], dry["by_queue"]) == (True, 1, {"sales": 1})
    assert web.audit("recordings_purged") == []
    code, report = web.json("/api/recordings/purge", "admin", method="POST", body={})
    assert code == 200 and (report["dry_run"], report["removed"], report["files_removed"]) == (False, 1, 1)
    assert report["bytes_freed"] == dry["bytes_freed"] > 0 and report["errors"] == report["missing"] == []
    [(actor, target, details)] = web.audit("recordings_purged")
    assert (actor, target, details["removed"], details["by_queue"]) == ("admin:ada", "recordings", 1, {"sales": 1})
    assert not (web.setup.dir / "call-2.wav").exists()


def test_purge_refuses_a_dry_run_that_is_not_a_boolean(web: Web):
    code, body = web.json("/api/recordings/purge", "admin", method="POST", body={"dry_run": "yes"})
    assert (code, body["field"]) == (400, "dry_run")
    assert (web.setup.dir / "call-2.wav").exists()
