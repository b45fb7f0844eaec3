"""Staffing maths (Erlang B, C, A), agents-needed search and the ``staffing`` CLI group."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from itertools import pairwise

import pytest
from click.testing import CliRunner

from callcenter.cli import main
from callcenter.kpi.cli import staffing
from callcenter.kpi.staffing import (
    ErlangAResult,
    StaffingError,
    Targets,
    _log_erlang_b,
    agents_needed,
    erlang_a,
    erlang_b,
    erlang_c,
    erlang_c_wait_probability,
    scheduled_agents,
    traffic_intensity,
    trunks_for_blocking,
)

# The reference: 100 calls in 30 min, AHT 180 s -> 10 Erlangs; target 80 % in 20 s.
REF_A = traffic_intensity(100, 1800, 180)
AHT = 180.0


# ---------------------------------------------------------------------------- reference values
def test_reference_traffic_is_exactly_ten_erlangs():
    assert REF_A == 10.0


def test_reference_fourteen_agents():
    r = erlang_c(14, REF_A, AHT, 20)
    assert (round(r.p_wait, 4), round(r.service_level, 4), round(r.asa, 2)) == (0.1741, 0.8884, 7.84)
    assert r.stable and r.occupancy == pytest.approx(10 / 14)


def test_reference_eleven_agents():
    r = erlang_c(11, REF_A, AHT, 20)
    assert (round(r.p_wait, 4), round(r.service_level, 4)) == (0.6821, 0.3896)


def test_reference_agents_needed_is_fourteen_and_sl_binds():
    r = agents_needed(REF_A, AHT, Targets(service_level=0.8, sl_seconds=20))
    assert r.agents == 14
    assert r.binding == ("service_level",)
    assert r.per_constraint == {"stability": 11, "service_level": 14}
    assert erlang_c(13, REF_A, AHT, 20).service_level < 0.8  # 13 really is one short


def test_occupancy_can_bind():
    # A loose SL (30 % in 20 s, met by 11 agents) leaves a 75 % occupancy cap to decide.
    r = agents_needed(REF_A, AHT, Targets(service_level=0.3, max_occupancy=0.75))
    assert r.per_constraint["occupancy"] == 14  # 10/13 = 0.769 > 0.75, 10/14 = 0.714
    assert r.per_constraint["service_level"] == 11
    assert (r.agents, r.binding) == (14, ("occupancy",))


def test_asa_can_bind_and_ties_are_all_reported():
    r = agents_needed(REF_A, AHT, Targets(service_level=0.8, max_asa=15, max_occupancy=0.85, shrinkage=0.3))
    assert r.agents == 14
    assert set(r.binding) == {"service_level", "asa"}  # ASA at 13 agents is 17.1 s
    assert r.per_constraint["occupancy"] == 12
    assert r.scheduled_agents == 20  # ceil(14 / 0.7)
    only_asa = agents_needed(REF_A, AHT, Targets(max_asa=30))
    assert (only_asa.agents, only_asa.binding) == (13, ("asa",))


def test_stability_binds_only_when_no_stated_target_needs_more():
    r = agents_needed(REF_A, AHT, Targets(max_occupancy=1.0))
    assert r.per_constraint["occupancy"] == 10  # A/N <= 1 at N == A ...
    assert (r.agents, r.binding) == (11, ("stability",))  # ... but N == A is unstable
    # A stated target that needs exactly the first stable N is what binds, not stability.
    loose = agents_needed(REF_A, AHT, Targets(service_level=0.3))
    assert (loose.agents, loose.binding) == (11, ("service_level",))


# 21 / (1 - 0.3) is 30.000000000000004 in floats: a bare ceil would schedule 31.
@pytest.mark.parametrize("agents, shrinkage, expected",
                         [(14, 0.3, 20), (14, 0.0, 14), (10, 0.5, 20), (11, 0.3, 16), (21, 0.3, 30), (17, 0.32, 25)])
def test_shrinkage(agents, shrinkage, expected):
    assert scheduled_agents(agents, shrinkage) == expected


# ---------------------------------------------------------------------------- Erlang C properties
def test_unstable_queue_is_explicit():
    for n in (5, 9, 10):  # N <= A = 10
        r = erlang_c(n, REF_A, AHT, 20)
        assert (r.stable, r.p_wait, r.service_level, r.asa, r.occupancy) == (False, 1.0, 0.0, math.inf, 1.0)
    assert erlang_c_wait_probability(10, 10.0) == 1.0


def test_more_agents_means_higher_sl_and_lower_asa():
    previous = erlang_c(11, REF_A, AHT, 20)
    for n in range(12, 40):
        r = erlang_c(n, REF_A, AHT, 20)
        assert r.service_level > previous.service_level
        assert r.asa < previous.asa and r.p_wait < previous.p_wait and r.occupancy < previous.occupancy
        previous = r


def test_sl_threshold_zero_is_one_minus_pw():
    r = erlang_c(14, REF_A, AHT, 0)
    assert r.service_level == pytest.approx(1 - r.p_wait)


def test_zero_traffic():
    r = erlang_c(1, 0.0, AHT, 20)
    assert (r.p_wait, r.service_level, r.asa, r.occupancy) == (0.0, 1.0, 0.0, 0.0)
    assert agents_needed(0.0, AHT, Targets(service_level=0.8)).agents == 1


# ---------------------------------------------------------------------------- Erlang B
def _erlang_b_exact(n: int, a: int) -> Fraction:
    """The textbook definition with exact rationals: (A^N/N!) / sum_k A^k/k!."""
    terms = [Fraction(a**k, math.factorial(k)) for k in range(n + 1)]
    return terms[-1] / sum(terms)


def test_erlang_b_matches_the_exact_definition():
    assert round(erlang_b(15, 10), 4) == 0.0365
    for n, a in [(15, 10), (1, 1), (30, 20), (5, 3), (0, 7)]:
        assert erlang_b(n, a) == pytest.approx(float(_erlang_b_exact(n, a)), rel=1e-12)


def test_trunks_for_blocking():
    assert trunks_for_blocking(20, 0.01) == 30
    assert erlang_b(30, 20) <= 0.01 < erlang_b(29, 20)
    # B(15, 10) = 0.036497: just meets 0.0365, just misses 0.0364.
    assert trunks_for_blocking(10, 0.0365) == 15
    assert trunks_for_blocking(10, 0.0364) == 16
    assert trunks_for_blocking(0, 0.01) == 0


def test_erlang_b_falls_with_more_trunks():
    values = [erlang_b(n, 20) for n in range(60)]
    assert values[0] == 1.0
    assert all(b2 < b1 for b1, b2 in pairwise(values))


# ---------------------------------------------------------------------------- large N
def test_hundreds_of_agents_without_overflow():
    c = erlang_c(500, 480.0, AHT, 20)
    a = erlang_a(500, 480.0, AHT, 120, 20)
    for value in (c.p_wait, c.service_level, c.asa, a.p_wait, a.p_abandon, a.service_level, a.asa, a.occupancy):
        assert math.isfinite(value) and 0 <= value
    assert 0 < c.p_wait < 1 and 0 < c.service_level < 1
    assert 0 < a.p_abandon < a.p_wait < 1
    assert 0 < erlang_b(500, 480.0) < 1
    r = agents_needed(480.0, AHT, Targets(service_level=0.8, sl_seconds=20))
    assert erlang_c(r.agents, 480.0, AHT, 20).service_level >= 0.8 > erlang_c(r.agents - 1, 480.0, AHT, 20).service_level


def test_log_erlang_b_agrees_and_survives_underflow():
    assert math.exp(_log_erlang_b(500, 480.0)) == pytest.approx(erlang_b(500, 480.0), rel=1e-10)
    tiny = _log_erlang_b(500, 10.0)  # B ~ e^-1456: far below the smallest float
    assert erlang_b(500, 10.0) == 0.0 and math.isfinite(tiny) and tiny < -1000
    # Stirling: log(A^N/N! / e^A) ~ N log A - (N log N - N) - A, within a few units.
    assert tiny == pytest.approx(500 * math.log(10) - (500 * math.log(500) - 500) - 10, abs=10)
    r = erlang_a(500, 10.0, AHT, 120, 20)
    assert (r.p_wait, r.service_level) == (0.0, 1.0)


# ---------------------------------------------------------------------------- Erlang A
def test_erlang_a_tends_to_erlang_c_as_patience_grows():
    c = erlang_c(14, REF_A, AHT, 20)
    gaps = []
    for patience in (1e3, 1e5, 1e7):
        a = erlang_a(14, REF_A, AHT, patience, 20)
        gaps.append(abs(a.p_wait - c.p_wait))
    assert gaps[0] > gaps[1] > gaps[2]
    a = erlang_a(14, REF_A, AHT, 1e8, 20)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-5)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-5)
    assert a.asa == pytest.approx(c.asa, rel=1e-5)
    assert a.occupancy == pytest.approx(c.occupancy, rel=1e-5)
    assert a.p_abandon < 1e-6


def _brute_force_erlang_a(n: int, traffic: float, aht: float, patience: float, t: float, queue_cap: int = 300):
    """The M/M/N+M chain solved state by state, truncated at queue_cap waiting callers.

    Stationary law by detailed balance; P(abandon) from the abandonment flow; SL by
    uniformizing the tagged caller's own chain (calls ahead -> served / abandoned) from the
    mix of positions arrivals find; ASA of the served by first-step analysis.
    """
    lam, mu, theta = traffic / aht, 1 / aht, 1 / patience
    weights = [1.0]
    for s in range(1, n + queue_cap + 1):
        death = min(s, n) * mu + max(0, s - n) * theta
        weights.append(weights[-1] * lam / death)
    total = sum(weights)
    pi = [w / total for w in weights]
    p_wait = sum(pi[n:])
    p_abandon = theta * sum((s - n) * pi[s] for s in range(n, len(pi))) / lam

    # Tagged caller with k ahead: moves to k-1 at n*mu + k*theta (served when k == 0), leaves at theta.
    start = [pi[n + k] for k in range(queue_cap)]  # arrival finds k waiting ahead
    down = [n * mu + k * theta for k in range(queue_cap)]
    rate = max(down) + theta
    dist, served, served_by_t = start[:], 0.0, 0.0
    poisson = math.exp(-rate * t)
    step = 0
    while True:  # uniformization: P(served by t) = sum_m Poisson(m; rate*t) * served after m jumps
        served_by_t += poisson * served
        step += 1
        if step > rate * t + 40 * math.sqrt(rate * t + 1) + 50:
            break
        new = [0.0] * queue_cap
        for k, p in enumerate(dist):
            if p == 0.0:
                continue
            stay = 1 - (down[k] + theta) / rate
            new[k] += p * stay
            if k == 0:
                served += p * down[0] / rate
            else:
                new[k - 1] += p * down[k] / rate
        dist = new
        poisson *= rate * t / step
    sl = (1 - p_wait) + served_by_t

    p_served_from, time_served_from = [], []  # first-step analysis, k = 0, 1, ...
    for k in range(queue_cap):
        r_k = down[k] + theta
        go = down[k] / r_k
        prev_p, prev_t = (1.0, 0.0) if k == 0 else (p_served_from[-1], time_served_from[-1])
        p_k = go * prev_p
        p_served_from.append(p_k)
        time_served_from.append(p_k / r_k + go * prev_t)
    answered = (1 - p_wait) + sum(pi[n + k] * p_served_from[k] for k in range(queue_cap))
    asa = sum(pi[n + k] * time_served_from[k] for k in range(queue_cap)) / answered
    return p_wait, p_abandon, sl, asa


@pytest.mark.parametrize("n, traffic, patience, t", [
    (14, 10.0, 120.0, 20.0),   # the reference load with impatient callers
    (3, 5.0, 300.0, 30.0),     # overloaded: N < A, stable only thanks to abandonment
    (8, 6.0, 60.0, 0.0),       # SL threshold 0: answered at once
])
def test_erlang_a_matches_brute_force_chain(n, traffic, patience, t):
    r = erlang_a(n, traffic, AHT, patience, t)
    p_wait, p_abandon, sl, asa = _brute_force_erlang_a(n, traffic, AHT, patience, t)
    assert r.p_wait == pytest.approx(p_wait, rel=1e-9)
    assert r.p_abandon == pytest.approx(p_abandon, rel=1e-9)
    assert r.service_level == pytest.approx(sl, rel=1e-8)
    assert r.asa == pytest.approx(asa, rel=1e-9)
    assert r.occupancy == pytest.approx(traffic * (1 - p_abandon) / n, rel=1e-9)


def test_erlang_a_overload_abandons_the_excess():
    # Far overloaded, the agents are always busy and the excess A - N leaves: P(ab) -> 1 - N/A.
    r = erlang_a(5, 50.0, AHT, 600, 20)
    assert r.p_abandon == pytest.approx(1 - 5 / 50, rel=1e-6)
    assert r.occupancy == pytest.approx(1.0, rel=1e-6)
    for n in range(1, 60):  # never above 100 %, not even by float noise; never rising beyond noise
        occupancy = [erlang_a(k, 50.0, AHT, 600, 20).occupancy for k in (n, n + 1)]
        assert 1.0 >= occupancy[0] >= occupancy[1] - 1e-12


def test_erlang_a_monotone_in_agents():
    rows = [erlang_a(n, REF_A, AHT, 120, 20) for n in range(1, 30)]
    for before, after in pairwise(rows):
        assert after.service_level > before.service_level
        assert after.asa < before.asa and after.p_abandon < before.p_abandon and after.p_wait < before.p_wait


def test_erlang_a_agents_needed_with_abandonment_target():
    r = agents_needed(REF_A, AHT, Targets(service_level=0.8, max_abandon=0.03), patience=120)
    assert isinstance(r.metrics, ErlangAResult) and r.model == "erlang_a"
    assert r.agents == 14 and r.binding == ("abandonment",)
    assert erlang_a(13, REF_A, AHT, 120, 20).p_abandon > 0.03 >= r.metrics.p_abandon
    assert r.per_constraint["service_level"] == 12


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("call, message", [
    (lambda: traffic_intensity(-1, 1800, 180), "calls"),
    (lambda: traffic_intensity(100, 1800, 0), "AHT"),
    (lambda: erlang_c(14, -1.0, 180, 20), "traffic"),
    (lambda: erlang_c(14, 10.0, 0, 20), "AHT"),
    (lambda: erlang_c(0, 10.0, 180, 20), "agents"),
    (lambda: erlang_c(14, float("nan"), 180, 20), "traffic"),
    (lambda: erlang_c(14, 10.0, 180, -5), "threshold"),
    (lambda: erlang_a(14, 10.0, 180, 0, 20), "patience"),
    (lambda: erlang_b(-1, 10.0), "servers"),
    (lambda: trunks_for_blocking(10, 1.0), "blocking"),
    (lambda: Targets(service_level=1.0), "service-level target"),
    (lambda: Targets(service_level=0.0), "service-level target"),
    (lambda: Targets(service_level=0.8, shrinkage=1.0), "shrinkage"),
    (lambda: Targets(service_level=0.8, shrinkage=-0.1), "shrinkage"),
    (lambda: Targets(max_occupancy=1.2), "occupancy"),
    (lambda: Targets(), "at least one target"),
    (lambda: scheduled_agents(10, 1.0), "shrinkage"),
    (lambda: agents_needed(10.0, 180, Targets(max_abandon=0.05)), "patience"),
])
def test_invalid_inputs_are_refused_clearly(call, message):
    with pytest.raises(StaffingError, match=message):
        call()


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def run():
    main.add_command(staffing)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["staffing", *args])

    return invoke


REF_ARGS = ("--calls", "100", "--interval", "30m", "--aht", "180", "--sl", "80/20")


def test_cli_erlang_c_text(run):
    result = run("erlang-c", *REF_ARGS, "--max-occupancy", "0.85", "--shrinkage", "0.3")
    assert result.exit_code == 0, result.output
    assert "required agents: 14 (binding: service level)" in result.output
    assert "scheduled agents: 20" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith(">"))
    assert row.split() == [">", "14", "0.1741", "0.8884", "7.84", "71.4%"]
    assert any(line.split()[:3] == ["11", "0.6821", "0.3896"] for line in result.output.splitlines())


@pytest.mark.parametrize("interval", ["30m", "0.5h", "1800s"])
def test_cli_interval_units(run, interval):
    result = run("erlang-c", "--calls", "100", "--interval", interval, "--aht", "180", "--sl", "80/20",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["traffic_erlangs"] == 10.0


def test_cli_erlang_c_json(run):
    result = run("erlang-c", *REF_ARGS, "--asa", "15", "--format", "json", "--agents", "10")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["required_agents"] == 14 and sorted(data["binding"]) == ["asa", "service_level"]
    assert round(data["metrics"]["p_wait"], 4) == 0.1741
    assert data["evaluated"]["stable"] is False and data["evaluated"]["asa"] is None  # no Infinity in JSON
    assert [row["agents"] for row in data["table"]] == list(range(11, 18))


def test_cli_erlang_a(run):
    result = run("erlang-a", *REF_ARGS, "--patience", "2m", "--max-abandon", "3%", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"] == "erlang_a" and data["required_agents"] == 14 and data["binding"] == ["abandonment"]
    assert data["patience_seconds"] == 120.0 and 0 < data["metrics"]["p_abandon"] <= 0.03
    text = run("erlang-a", *REF_ARGS, "--patience", "120")
    assert text.exit_code == 0 and "P(ab)" in text.output and "required agents: 12" in text.output


def test_cli_erlang_b(run):
    needed = run("erlang-b", "--traffic", "20", "--blocking", "0.01")
    assert needed.exit_code == 0 and "trunks needed: 30" in needed.output
    data = json.loads(run("erlang-b", "--traffic", "10", "--trunks", "15", "--format", "json").output)
    assert data["trunks"] == 15 and round(data["blocking"], 4) == 0.0365


@pytest.mark.parametrize("args, fragment", [
    (("erlang-c", "--calls", "100", "--interval", "30", "--aht", "180", "--sl", "80/20"), "not a duration"),
    (("erlang-c", "--calls", "100", "--interval", "30m", "--aht", "180"), "give a target"),
    (("erlang-c", *REF_ARGS, "--shrinkage", "1"), "shrinkage must be in [0, 1)"),
    (("erlang-c", "--calls", "100", "--interval", "30m", "--aht", "180", "--sl", "100/20"), "service-level target"),
    (("erlang-c", "--calls", "-5", "--interval", "30m", "--aht", "180", "--sl", "80/20"), "calls"),
    (("erlang-c", "--calls", "100", "--interval", "30m", "--aht", "0", "--sl", "80/20"), "longer than zero"),
    (("erlang-c", "--calls", "100", "--aht", "180", "--sl", "80/20"), "--interval"),
    (("erlang-a", *REF_ARGS), "--patience"),
    (("erlang-b", "--traffic", "20"), "exactly one of --blocking and --trunks"),
    (("erlang-b", "--traffic", "20", "--blocking", "2"), "blocking"),
])
def test_cli_bad_input_exits_2_with_a_message(run, args, fragment):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
