"""Smoke test for benchmarks/routing_scale.py: a tiny --quick run must still print every figure
(decision-time rows per size and event kind, memory rows, growth rows, target verdicts), and the
events it times must be real routing decisions (some of them make offers), so the benchmark
cannot rot unnoticed when the router's API changes."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from benchmarks import routing_scale
from benchmarks.routing_scale import KINDS, Samples, SizeResult

SIZES = (40, 80)
EVENTS = 40
NUMBER = r"(\d+(?:\.\d+)?)"


@pytest.fixture(scope="module")
def output() -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = routing_scale.main(["--quick", "--sizes", ",".join(map(str, SIZES)), "--waiting", "30",
                                     "--events", str(EVENTS), "--warmup", "5", "--seed", "3"])
    assert status == 0
    assert "busy floor" in err.getvalue()  # progress goes to stderr, not into the figures
    return out.getvalue()


def timing_row(output: str, agents: int, kind: str) -> tuple[int, float, float, float, int]:
    pattern = (rf"^\s*{agents}\s+{re.escape(kind)}\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}"
               rf"\s+(\d+)%\s+(\d+)$")
    match = re.search(pattern, output, re.MULTILINE)
    assert match, f"no timing row for {agents} agents / {kind} in:\n{output}"
    n, p50, p99, top, cpu_p99, offered, off_cpu = match.groups()
    assert float(cpu_p99) > 0 and 0 <= int(off_cpu) <= int(n)
    return int(n), float(p50), float(p99), float(top), int(offered)


@pytest.mark.parametrize("agents", SIZES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_timing_rows(output: str, agents: int, kind: str) -> None:
    n, p50, p99, top, _ = timing_row(output, agents, kind)
    # The run stops once arrivals and agents becoming available have their count; step timers
    # fire along the way, usually as often.
    assert n == EVENTS if kind != "step-widen" else 1 <= n <= EVENTS
    assert 0 < p50 <= p99 <= top


@pytest.mark.parametrize("agents", SIZES)
def test_timed_events_are_routing_decisions(output: str, agents: int) -> None:
    # An idle floor offers nearly every arriving call; an agent back from wrap-up nearly always
    # finds one of the waiting calls. Zero would mean the benchmark times no-ops.
    assert timing_row(output, agents, "arrival/idle")[4] >= 50
    assert timing_row(output, agents, "available")[4] >= 50


@pytest.mark.parametrize("agents", SIZES)
def test_memory_rows(output: str, agents: int) -> None:
    match = re.search(rf"^\s*{agents}\s+{NUMBER} KB\s+{NUMBER} KB$", output, re.MULTILINE)
    assert match, f"no memory row for {agents} agents in:\n{output}"
    per_agent, per_call = map(float, match.groups())
    # An agent or a waiting call costs a few hundred bytes at least, and far below a megabyte.
    assert 0.1 < per_agent < 1024
    assert 0.1 < per_call < 1024


def test_growth_rows_and_targets(output: str) -> None:
    ratio = r"\s+\d+\.\d\dx"
    for agents in SIZES:
        pattern = rf"^\s*{agents}\s+{agents / SIZES[0]:.1f}x" + ratio * (len(KINDS) + 2) + "$"
        assert re.search(pattern, output, re.MULTILINE), f"no growth row for {agents} agents in:\n{output}"
    assert f"growth vs {SIZES[0]} agents" in output
    assert re.search(r"^\s*40\s+1\.0x(\s+1\.00x){6}$", output, re.MULTILINE)
    assert "p99 < 1 ms at 5000 agents: n/a (5000 not in --sizes)" in output
    assert re.search(r"memory < 10 KB per waiting call: worst \d+\.\d\d KB \(at \d+ agents\): PASS$",
                     output, re.MULTILINE)
    for agents in SIZES:
        assert re.search(rf"^\s*{agents}\s+busy floor: {agents}/{agents} agents on a call at the start",
                         output, re.MULTILINE)


def fake_result(agents: int, bytes_per_call: float, slow: dict[str, int]) -> SizeResult:
    """Every kind at p99 0.5 ms, except those in ``slow`` (kind -> p99 in ns)."""
    samples = {}
    for kind in KINDS:
        s = Samples(warmup=0, limit=100)
        s.ns = [1000] * 90 + [slow.get(kind, 500_000)] * 10  # the top 10% set p99
        samples[kind] = s
    return SizeResult(agents, samples, 800.0, bytes_per_call, [])


@pytest.mark.parametrize(("slow", "per_call", "verdicts"), [
    ({}, 1000.0, ("PASS", "PASS")),
    ({"available": 1_500_000}, 1000.0, ("FAIL", "PASS")),  # one kind over 1 ms fails the target
    ({}, 11 * 1024.0, ("PASS", "FAIL")),
])
def test_target_verdicts(capsys: pytest.CaptureFixture[str], slow: dict[str, int], per_call: float,
                         verdicts: tuple[str, str]) -> None:
    args = routing_scale.parse_args(["--sizes", "1000,5000", "--waiting", "10", "--events", "100", "--warmup", "0"])
    floor = routing_scale.make_floor(args.skills, args.queues, args.seed)
    # the 1000-agent row is slow and heavy too: only the 5000-agent row may decide the p99 verdict
    results = [fake_result(1000, 900.0, {"arrival/idle": 2_000_000}), fake_result(5000, per_call, slow)]
    routing_scale.report(floor, results, args, 0.0)
    out = capsys.readouterr().out
    assert re.search(rf"p99 < 1 ms at 5000 agents: .*: {verdicts[0]}$", out, re.MULTILINE)
    assert re.search(rf"memory < 10 KB per waiting call: .*: {verdicts[1]}$", out, re.MULTILINE)
