"""README's first command, minus the install step: `callcenter up --demo` brings up Asterisk, the
engine, SQLite and the web API, runs the demo calls and reports. Here it also exits when done."""

from __future__ import annotations

import subprocess
import sys

from callcenter.config import Settings
from callcenter.events.log import read_events
from callcenter.storage import make_engine
from tests.stack.harness import write_settings


def test_up_demo_runs_three_calls_to_agents_and_exits_cleanly(tmp_path):
    config = write_settings(tmp_path / "settings.yaml", data_dir=tmp_path / "data", asterisk_instance="demo-test",
                            web_port=18082, ring_timeout=5, wrapup_seconds=1)
    out = subprocess.run([sys.executable, "-m", "callcenter", "--config", str(config), "up", "--demo",
                          "--exit-after-demo"], capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "demo OK: every caller reached an agent" in out.stdout
    assert "did not answer: paused" in out.stdout
    assert "IVR: retries used up -> default support" in out.stdout

    events = read_events(make_engine(Settings.load(config).db_url), limit=10_000)
    answered = sorted((e["queue"], e["agent_id"]) for e in events if e["kind"] == "answered")
    assert answered == [("sales", "1002"), ("support", "1001"), ("support", "1001")]
    assert [e["agent_id"] for e in events if e["kind"] == "ring_no_answer"] == ["1003"]
    assert events[-1]["kind"] == "engine_stopped", "the engine shut down cleanly and flushed its log"
