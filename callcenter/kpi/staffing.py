"""Staffing maths: Erlang B (trunks), Erlang C (M/M/N) and Erlang A (M/M/N+M).

Pure and deterministic: plain floats and the ``math`` module, no I/O. All times are in
seconds; traffic is in Erlangs (A = lambda * AHT, the mean number of calls in service if
nobody ever waited). ``docs/staffing.md`` gives the formulas, their assumptions and the
reference example the tests pin.

Numerical safety: nothing ever forms A**N or N!. Erlang B comes from its recursion
(B(0) = 1, B(n) = A*B(n-1) / (n + A*B(n-1))), Erlang C is derived from B, and Erlang A's
queue sums are accumulated in log space with a running rescale, so hundreds of agents and
long patience neither overflow nor lose the small probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Float noise must not cost an agent: 0.8 computed as 0.7999999999999999 still meets 80%.
_TOLERANCE = 1e-12
# A search that has not met its targets by here has been given targets no sane centre
# needs (or inputs far outside the models' use); stop rather than loop for minutes.
MAX_AGENTS = 100_000
# Erlang A's queue series needs about lambda*patience terms when overloaded; past this
# the inputs are outside any real contact centre and the loop would take minutes.
_MAX_SERIES_TERMS = 5_000_000

SERVICE_LEVEL = "service_level"
ASA = "asa"
OCCUPANCY = "occupancy"
ABANDONMENT = "abandonment"
STABILITY = "stability"


class StaffingError(ValueError):
    """Inputs the staffing models cannot take, or targets they cannot meet."""


# ---------------------------------------------------------------------------- validation
def _number(name: str, value: float) -> float:
    # bool is an int subclass; True agents or a NaN rate are caller bugs, not inputs.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise StaffingError(f"{name} must be a number, got {value!r}")
    return float(value)


def _non_negative(name: str, value: float) -> float:
    v = _number(name, value)
    if v < 0 or math.isinf(v):
        raise StaffingError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _positive(name: str, value: float) -> float:
    v = _number(name, value)
    if v <= 0 or math.isinf(v):
        raise StaffingError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _open_fraction(name: str, value: float) -> float:
    v = _number(name, value)
    if not 0 < v < 1:
        raise StaffingError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return v


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StaffingError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _shrinkage(value: float) -> float:
    v = _number("shrinkage", value)
    if not 0 <= v < 1:
        raise StaffingError(f"shrinkage must be in [0, 1), got {value!r}")
    return v


# ---------------------------------------------------------------------------- basics
def traffic_intensity(calls: float, interval: float, aht: float) -> float:
    """Offered traffic A = lambda * AHT in Erlangs, with lambda = calls / interval (seconds).

    Multiplies before dividing so whole-number loads stay exact (100 * 180 / 1800 == 10.0),
    which matters when N == A decides stability.
    """
    calls = _non_negative("calls", calls)
    interval = _positive("interval", interval)
    aht = _positive("AHT", aht)
    return calls * aht / interval


def scheduled_agents(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that ``agents`` are on the phones: ceil(N / (1 - shrinkage))."""
    agents = _count("agents", agents, 0)
    shrinkage = _shrinkage(shrinkage)
    # 14 / (1 - 0.3) is 20.000000000000004 in floats; rounding first keeps it 20.
    return math.ceil(round(agents / (1.0 - shrinkage), 9))


# ---------------------------------------------------------------------------- Erlang B
def erlang_b(servers: int, traffic: float) -> float:
    """Blocking probability of an M/M/N/N loss system (N trunks, A Erlangs offered).

    The recursion stays in [0, 1] at every step, so it cannot overflow; for huge N and
    small A it underflows gracefully to 0.0, which is the right answer to double precision.
    """
    servers = _count("servers", servers, 0)
    traffic = _non_negative("traffic", traffic)
    b = 1.0
    for n in range(1, servers + 1):
        b = traffic * b / (n + traffic * b)
    return b


def _log_erlang_b(servers: int, traffic: float) -> float:
    """log B(N, A) by the same recursion in logs, for callers that need B below 1e-308."""
    if traffic == 0:
        return 0.0 if servers == 0 else -math.inf
    log_a = math.log(traffic)
    log_b = 0.0
    for n in range(1, servers + 1):
        # A*B(n-1) <= A, so the exp cannot overflow; underflow to 0 is harmless beside n.
        log_b = log_a + log_b - math.log(n + math.exp(log_a + log_b))
    return log_b


def trunks_for_blocking(traffic: float, target_blocking: float) -> int:
    """Smallest number of trunks N with Erlang B(N, A) <= target_blocking."""
    traffic = _non_negative("traffic", traffic)
    target = _open_fraction("target blocking", target_blocking)
    if traffic == 0:
        return 0  # no calls offered, nothing to block
    b, n = 1.0, 0
    while b > target * (1 + _TOLERANCE):
        n += 1
        if n > MAX_AGENTS:
            raise StaffingError(f"more than {MAX_AGENTS} trunks needed for {traffic} Erlangs")
        b = traffic * b / (n + traffic * b)
    return n


# ---------------------------------------------------------------------------- Erlang C
@dataclass(frozen=True)
class ErlangCResult:
    """M/M/N with infinitely patient callers, for one staffing level N.

    ``stable`` is False when N <= A: the queue grows without bound, so every caller waits
    (p_wait 1), nobody is answered in time (service_level 0), ASA is infinite and the
    agents are busy all the time (occupancy 1).
    """

    agents: int
    traffic: float
    aht: float
    sl_seconds: float
    stable: bool
    p_wait: float
    service_level: float
    asa: float
    occupancy: float


def erlang_c_wait_probability(agents: int, traffic: float) -> float:
    """Erlang C: P(an arriving call waits) = B / (1 - rho*(1 - B)), rho = A/N; 1 if N <= A."""
    agents = _count("agents", agents, 1)
    traffic = _non_negative("traffic", traffic)
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    rho = traffic / agents
    # Denominator >= 1 - rho > 0 here, so no division blow-up.
    return b / (1.0 - rho * (1.0 - b))


def erlang_c(agents: int, traffic: float, aht: float, sl_seconds: float = 20.0) -> ErlangCResult:
    """Erlang C metrics for N agents, A Erlangs offered, AHT and an SL threshold (seconds)."""
    agents = _count("agents", agents, 1)
    traffic = _non_negative("traffic", traffic)
    aht = _positive("AHT", aht)
    sl_seconds = _non_negative("service-level threshold", sl_seconds)
    if agents <= traffic:
        return ErlangCResult(agents, traffic, aht, sl_seconds, stable=False, p_wait=1.0,
                             service_level=0.0, asa=math.inf, occupancy=1.0)
    p_wait = erlang_c_wait_probability(agents, traffic)
    spare = agents - traffic  # > 0: the queue drains at (N - A) / AHT
    service_level = 1.0 - p_wait * math.exp(-spare * sl_seconds / aht)
    asa = p_wait * aht / spare
    return ErlangCResult(agents, traffic, aht, sl_seconds, stable=True, p_wait=p_wait,
                         service_level=service_level, asa=asa, occupancy=traffic / agents)


# ---------------------------------------------------------------------------- Erlang A
@dataclass(frozen=True)
class ErlangAResult:
    """M/M/N+M (Palm/Erlang A) for one staffing level: callers abandon after an exponential
    patience with the given mean. Always stable: abandonment bounds the queue.

    service_level is P(answered within sl_seconds) over all offered calls (abandoned calls
    count as missed); asa is the mean wait of the calls that get answered (zero waits
    included); occupancy is carried traffic A*(1 - p_abandon) over N.
    """

    agents: int
    traffic: float
    aht: float
    patience: float
    sl_seconds: float
    p_wait: float
    p_abandon: float
    service_level: float
    asa: float
    occupancy: float


def _logaddexp(x: float, y: float) -> float:
    if x == -math.inf:
        return y
    if y == -math.inf:
        return x
    high, low = (x, y) if x >= y else (y, x)
    return high + math.log1p(math.exp(low - high))


@dataclass
class _QueueSums:
    """Logs of sums over j (calls already waiting ahead of an arrival that must wait) of
    t_j = x^j / ((a+1)(a+2)...(a+j)) = pi(N+j)/pi(N), with x = lambda/theta, a = N*mu/theta,
    each weighted by what a waiting arrival with j ahead experiences."""

    wait: float         # sum t_j                              -> P(wait) numerator
    abandon: float      # sum t_j (j+1)/(a+j+1)                -> P(abandon) numerator
    served: float       # sum t_j a/(a+j+1)                    -> P(waited, then served)
    served_wait: float  # sum t_j a/(a+j+1) H_j, H_j = sum_{k=1..j+1} 1/(a+k) -> theta*E[wait; served]


def _queue_sums(x: float, a: float) -> _QueueSums:
    # Why these weights: with j ahead, the arrival's virtual wait is a sum of exponential
    # stages of rates N*mu + k*theta (k = j..0); it survives stage k with probability
    # theta(a+k)/(theta(a+k+1)), so P(served | j) telescopes to a/(a+j+1), and
    # E[wait * 1{served} | j] = P(served | j) * sum_k 1/(theta(a+k+1)).
    # Each weight is in [0, 1], so the tail of every weighted sum is bounded by the tail of
    # sum t_j, which is geometric once the term ratio x/(a+j+1) drops below 1.
    log_term, scale = 0.0, 0.0
    sums = [0.0, 0.0, 0.0, 0.0]  # in units of exp(scale); rescaled whenever a term beats it
    harmonic = 0.0
    j = 0
    while True:
        if log_term > scale:
            shrink = math.exp(scale - log_term)
            sums = [s * shrink for s in sums]
            scale = log_term
        term = math.exp(log_term - scale)
        harmonic += 1.0 / (a + j + 1)
        served = a / (a + j + 1)
        sums[0] += term
        sums[1] += term * (j + 1) / (a + j + 1)
        sums[2] += term * served
        sums[3] += term * served * harmonic
        ratio = x / (a + j + 1)  # t_{j+1} / t_j, falling in j
        if ratio < 1 and term * ratio / (1 - ratio) <= 1e-17 * min(sums):
            break
        j += 1
        if j > _MAX_SERIES_TERMS:
            raise StaffingError("arrival rate x patience is too large for the Erlang A series "
                                f"(more than {_MAX_SERIES_TERMS} queue states carry weight)")
        log_term += math.log(ratio)
    logs = [scale + math.log(s) for s in sums]
    return _QueueSums(*logs)


def erlang_a(agents: int, traffic: float, aht: float, patience: float,
             sl_seconds: float = 20.0) -> ErlangAResult:
    """Erlang A (M/M/N+M) metrics; ``patience`` is the callers' mean patience 1/theta (s).

    Stationary chain (birth-death): pi(n) ~ A^n/n! for n <= N and
    pi(N+j) = pi(N) * prod_{k=1..j} lambda/(N*mu + k*theta). The queue part
    sum_j pi(N+j)/pi(N) = 1F1(1; a+1; x) = a e^x x^-a gamma(a, x) (the incomplete-gamma
    form of Garnett/Mandelbaum/Reiman), summed here as its power series in logs; the
    below-N part is (1 - B)/B with B = Erlang B(N, A), so nothing is formed from A^N/N!.
    """
    agents = _count("agents", agents, 1)
    traffic = _non_negative("traffic", traffic)
    aht = _positive("AHT", aht)
    patience = _positive("patience", patience)
    sl_seconds = _non_negative("service-level threshold", sl_seconds)
    if traffic == 0:
        return ErlangAResult(agents, traffic, aht, patience, sl_seconds, p_wait=0.0,
                             p_abandon=0.0, service_level=1.0, asa=0.0, occupancy=0.0)

    x = traffic * patience / aht  # lambda / theta
    a = agents * patience / aht   # N*mu / theta
    log_b = _log_erlang_b(agents, traffic)
    log_below = math.log1p(-math.exp(log_b)) - log_b  # log((1-B)/B) = log(sum_{n<N} pi(n)/pi(N))
    queue = _queue_sums(x, a)
    log_total = _logaddexp(log_below, queue.wait)

    # Waited more than t and still served: sum_j t_j E_j[e^{-theta V}; V > t]. With
    # c = e^{-theta t} this is c^(a+1) e^{x(1-c)} times the "served" sum at x*c (the Beta
    # representation of the stage sum, docs/staffing.md), hence a second, cheaper series.
    theta_t = sl_seconds / patience
    late = _queue_sums(x * math.exp(-theta_t), a).served
    log_late = -(a + 1) * theta_t + x * -math.expm1(-theta_t) + late
    in_time_share = -math.expm1(min(0.0, log_late - queue.served))  # of those waited & served

    p_wait = math.exp(queue.wait - log_total)
    p_abandon = math.exp(queue.abandon - log_total)
    service_level = (math.exp(log_below - log_total)
                     + math.exp(queue.served - log_total) * in_time_share)
    log_answered = _logaddexp(log_below, queue.served)
    asa = patience * math.exp(queue.served_wait - log_answered)
    # Carried traffic from P(answered) directly: A*(1 - p_abandon) would cancel when nearly
    # everyone beyond N abandons; the min() only absorbs the last bit of float noise at 1.
    occupancy = min(1.0, traffic * math.exp(log_answered - log_total) / agents)
    return ErlangAResult(agents, traffic, aht, patience, sl_seconds, p_wait=p_wait,
                         p_abandon=p_abandon, service_level=min(1.0, service_level), asa=asa,
                         occupancy=occupancy)


# ---------------------------------------------------------------------------- agents needed
@dataclass(frozen=True)
class Targets:
    """What the staffing must achieve; give at least one of the optional targets.

    service_level: fraction answered within sl_seconds, in (0, 1) (e.g. 0.8 with 20 s).
    max_asa: seconds. max_occupancy: in (0, 1]. max_abandon: in (0, 1), Erlang A only.
    shrinkage: share of paid time off the phones, in [0, 1).
    """

    service_level: float | None = None
    sl_seconds: float = 20.0
    max_asa: float | None = None
    max_occupancy: float | None = None
    max_abandon: float | None = None
    shrinkage: float = 0.0

    def __post_init__(self) -> None:
        if self.service_level is not None:
            _open_fraction("service-level target", self.service_level)
        _non_negative("service-level threshold", self.sl_seconds)
        if self.max_asa is not None:
            _positive("ASA target", self.max_asa)
        if self.max_occupancy is not None:
            occ = _number("maximum occupancy", self.max_occupancy)
            if not 0 < occ <= 1:
                raise StaffingError(f"maximum occupancy must be in (0, 1], got {self.max_occupancy!r}")
        if self.max_abandon is not None:
            _open_fraction("maximum abandonment", self.max_abandon)
        _shrinkage(self.shrinkage)
        if all(t is None for t in (self.service_level, self.max_asa, self.max_occupancy, self.max_abandon)):
            raise StaffingError("give at least one target: service level, ASA, occupancy or abandonment")


Metrics = ErlangCResult | ErlangAResult


@dataclass(frozen=True)
class StaffingResult:
    """The smallest agent count meeting every target, and why.

    per_constraint maps each constraint to the smallest N that meets it alone; ``agents`` is
    their maximum and ``binding`` names the constraint(s) reaching it. "stability" (N > A,
    Erlang C only) is binding only when no stated target needs as many agents.
    """

    agents: int
    scheduled_agents: int
    binding: tuple[str, ...]
    per_constraint: dict[str, int] = field(hash=False)
    metrics: Metrics = field(hash=False)
    model: str = "erlang_c"


def _met(metrics: Metrics, targets: Targets) -> dict[str, bool]:
    """Which stated targets these metrics meet (compared with a float-noise tolerance)."""
    met: dict[str, bool] = {}
    if targets.service_level is not None:
        met[SERVICE_LEVEL] = metrics.service_level >= targets.service_level - _TOLERANCE
    if targets.max_asa is not None:
        met[ASA] = metrics.asa <= targets.max_asa + _TOLERANCE
    if targets.max_occupancy is not None:
        met[OCCUPANCY] = metrics.occupancy <= targets.max_occupancy + _TOLERANCE
    if targets.max_abandon is not None:
        met[ABANDONMENT] = metrics.p_abandon <= targets.max_abandon + _TOLERANCE  # type: ignore[union-attr]
    return met


def _min_agents_for_occupancy(traffic: float, max_occupancy: float) -> int:
    """Smallest N >= 1 with A/N <= max_occupancy (Erlang C's occupancy is exactly A/N)."""
    n = max(1, math.ceil(traffic / max_occupancy))
    while n > 1 and traffic / (n - 1) <= max_occupancy + _TOLERANCE:
        n -= 1  # ceil of a quotient that float noise pushed just above a whole number
    return n


def evaluate(agents: int, traffic: float, aht: float, sl_seconds: float = 20.0,
             patience: float | None = None) -> Metrics:
    """Erlang C metrics, or Erlang A's when a mean patience is given."""
    if patience is None:
        return erlang_c(agents, traffic, aht, sl_seconds)
    return erlang_a(agents, traffic, aht, patience, sl_seconds)


def agents_needed(traffic: float, aht: float, targets: Targets,
                  patience: float | None = None) -> StaffingResult:
    """Smallest N meeting all targets under Erlang C, or Erlang A if ``patience`` is given.

    Walks N upwards from the first candidate (floor(A) + 1 for Erlang C, whose smaller N are
    unstable; 1 for Erlang A) and notes the first N meeting each target. Every metric is
    monotone in N (more agents: higher SL, lower ASA, occupancy and abandonment), so that
    first N is each target's minimum and the walk stops once all are met.
    """
    traffic = _non_negative("traffic", traffic)
    aht = _positive("AHT", aht)
    if patience is not None:
        patience = _positive("patience", patience)
    elif targets.max_abandon is not None:
        raise StaffingError("an abandonment target needs caller patience (Erlang A)")

    first: dict[str, int] = {}
    if patience is None:
        first[STABILITY] = math.floor(traffic) + 1
        if targets.max_occupancy is not None:
            # Occupancy alone may be met below the stable range the walk starts at (A/N <= 1
            # at N == A); work out its own minimum so per_constraint reports it truthfully.
            first[OCCUPANCY] = _min_agents_for_occupancy(traffic, targets.max_occupancy)
    n = max(1, first.get(STABILITY, 1))
    while True:
        metrics = evaluate(n, traffic, aht, targets.sl_seconds, patience)
        met = _met(metrics, targets)
        for name, ok in met.items():
            if ok and name not in first:
                first[name] = n
        if all(met.values()):
            break
        n += 1
        if n > MAX_AGENTS:
            raise StaffingError(f"targets not met with {MAX_AGENTS} agents")

    stated_first = {k: v for k, v in first.items() if k != STABILITY}
    binding = tuple(k for k, v in stated_first.items() if v == n) or (STABILITY,)
    return StaffingResult(agents=n, scheduled_agents=scheduled_agents(n, targets.shrinkage),
                          binding=binding, per_constraint=first, metrics=metrics,
                          model="erlang_c" if patience is None else "erlang_a")
