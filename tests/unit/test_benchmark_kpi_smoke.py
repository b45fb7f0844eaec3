"""Smoke test for benchmarks/kpi_report.py: a small SQLite-only run must still print every figure
(rows, events per call, scan and report seconds, the report/scan ratio against its target, peak
memory), and the log it generates must hold the calls it was asked for, in time order, with the
event kinds a real floor produces, so the benchmark cannot rot unnoticed when the event log or the
report's API changes."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from pathlib import Path

import pytest

from benchmarks import kpi_report

CALLS = 2000
ARGS = ["--calls", str(CALLS), "--backend", "sqlite", "--days", "2", "--agents", "20", "--seed", "7"]
NUMBER = r"(\d+(?:\.\d+)?)"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    keep = tmp_path_factory.mktemp("kpi-bench")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = kpi_report.main([*ARGS, "--keep", str(keep)])
    assert status == 0
    files = list(keep.glob("*.sqlite"))
    assert len(files) == 1, files  # kept for the next run, no partial file left
    return out.getvalue(), err.getvalue(), files[0]


def test_the_figures_are_printed(run: tuple[str, str, Path]) -> None:
    output, _, _ = run
    row = re.search(rf"^sqlite\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s+(\d+)\s+(\d+)$",
                    output, re.MULTILINE)
    assert row, f"no sqlite row in:\n{output}"
    rows, per_call, load, scan, report, ratio, rss_scan, rss_report = row.groups()
    assert int(rows) > 5 * CALLS
    assert float(per_call) == pytest.approx(int(rows) / CALLS, abs=0.01)
    assert float(scan) > 0 and float(report) > 0 and float(load) > 0
    assert float(ratio) == pytest.approx(float(report) / float(scan), rel=0.05, abs=0.02)
    assert int(rss_scan) > 0 and int(rss_report) > 0
    assert re.search(r"^target report <= 3x scan, sqlite: \d+\.\d\dx: (MET|MISSED)$", output, re.MULTILINE)
    assert "interval='30m'" in output
    assert "generating and loading" in run[1]  # progress goes to stderr, not into the figures


def test_the_log_holds_the_calls_asked_for(run: tuple[str, str, Path]) -> None:
    _, _, path = run
    with contextlib.closing(sqlite3.connect(path)) as db:
        calls = db.execute("SELECT count(DISTINCT call_id) FROM events WHERE kind = 'queued'").fetchone()[0]
        kinds = dict(db.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        out_of_order = db.execute("SELECT count(*) FROM events a JOIN events b ON b.id = a.id + 1 "
                                  "WHERE b.ts < a.ts").fetchone()[0]
        keys = db.execute("SELECT count(DISTINCT event_key), count(*) FROM events").fetchone()
    assert calls == CALLS
    assert out_of_order == 0  # id order is time order, as the engine writes it
    assert keys[0] == keys[1]  # every event has its own key
    assert kinds["call_arrived"] == CALLS
    assert kinds["answered"] > 0.7 * CALLS
    # a call's answer is followed by its end, the agent's wrap-up and its return
    assert kinds["answered"] == kinds["ended"] == kinds["wrapup_done"]
    for kind in ("offered", "agent_state", "abandoned", "ring_no_answer", "hold_started", "hold_ended",
                 "transferred", "disposition", "engine_started"):
        assert kinds.get(kind, 0) > 0, f"no {kind} events: {kinds}"


def test_a_kept_log_is_reused(run: tuple[str, str, Path]) -> None:
    _, _, path = run
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert kpi_report.main([*ARGS, "--keep", str(path.parent)]) == 0
    assert "reusing" in err.getvalue()
    assert re.search(r"^sqlite\s+\d+\s+\S+\s+cached\s", out.getvalue(), re.MULTILINE)
