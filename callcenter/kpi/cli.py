"""``callcenter staffing``: Erlang C / A agent counts and Erlang B trunk counts.

The lead registers the group with ``main.add_command(staffing)``. Parsing and printing
live here; every number comes from :mod:`callcenter.kpi.staffing`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import click

from callcenter.kpi.staffing import (
    ErlangAResult,
    ErlangCResult,
    StaffingError,
    StaffingResult,
    Targets,
    agents_needed,
    erlang_b,
    evaluate,
    traffic_intensity,
    trunks_for_blocking,
)

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$", re.IGNORECASE)
_TABLE_REACH = 3  # rows either side of the answer: enough to see the SL/ASA knee


# ---------------------------------------------------------------------------- parameter types
class Duration(click.ParamType):
    """``15m``, ``1h``, ``3600s``; a bare number is seconds unless ``unit_required``."""

    name = "duration"

    def __init__(self, unit_required: bool = False) -> None:
        # An interval of "30" is ambiguous (30 s or 30 min?) and a wrong guess is off by
        # 60x, so intervals must say their unit; AHT and patience are customarily seconds.
        self.unit_required = unit_required

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        match = _DURATION.match(str(value))
        if not match or (self.unit_required and not match.group(2)):
            hint = "15m, 1h or 3600s" if self.unit_required else "180, 3m or 180s"
            self.fail(f"{value!r} is not a duration (e.g. {hint})", param, ctx)
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than zero", param, ctx)
        return seconds


class Share(click.ParamType):
    """A fraction: ``0.85`` or ``85%``. Range checks are the model's (clear messages there)."""

    name = "fraction"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{value!r} is not a fraction (e.g. 0.85 or 85%)", param, ctx)


class ServiceLevel(click.ParamType):
    """``80/20``: 80 % of calls answered within 20 seconds (``80%/20s`` also accepted)."""

    name = "percent/seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        match = re.match(r"^\s*(\d+(?:\.\d*)?)\s*%?\s*/\s*(\d+(?:\.\d*)?)\s*s?\s*$", str(value))
        if not match:
            self.fail(f"{value!r} is not a service level like 80/20 (percent/seconds)", param, ctx)
        return float(match.group(1)) / 100, float(match.group(2))


# ---------------------------------------------------------------------------- shared options
def _load_options(aht_required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--calls/--interval or --traffic, and --aht, shared by all three commands."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--calls", type=float, help="Calls offered in the interval."),
            click.option("--interval", type=Duration(unit_required=True),
                         help="Length of the interval: 15m, 30m, 1h, 3600s."),
            click.option("--traffic", type=float, help="Offered traffic in Erlangs (instead of --calls/--interval)."),
            click.option("--aht", type=Duration(), required=aht_required,
                         help="Average handling time; seconds, or 3m etc."),
            click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                         show_default=True, help="Output format."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _traffic(calls: float | None, interval: float | None, traffic: float | None, aht: float | None) -> float:
    if traffic is not None:
        if calls is not None or interval is not None:
            raise click.UsageError("give either --traffic or --calls with --interval, not both")
        return traffic
    if calls is None or interval is None:
        raise click.UsageError("give --calls and --interval (or --traffic in Erlangs)")
    if aht is None:
        raise click.UsageError("--calls/--interval need --aht to become Erlangs (or give --traffic)")
    return traffic_intensity(calls, interval, aht)


def _model_errors(func: Callable[[], None]) -> None:
    # Every StaffingError is caused by what was typed, so it is a usage error (exit 2).
    try:
        func()
    except StaffingError as exc:
        raise click.UsageError(str(exc)) from None


def _json_safe(value: Any) -> Any:
    """JSON has no Infinity: an unstable queue's ASA becomes null (``stable`` says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _emit_json(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(_json_safe(payload), indent=2, allow_nan=False))


# ---------------------------------------------------------------------------- text rendering
_LABELS = {"service_level": "service level", "asa": "ASA", "occupancy": "occupancy",
           "abandonment": "abandonment", "stability": "stability (N > A)"}


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def _targets_text(t: Targets) -> str:
    parts = []
    if t.service_level is not None:
        parts.append(f"service level {_pct(t.service_level)} in {t.sl_seconds:g} s")
    if t.max_asa is not None:
        parts.append(f"ASA <= {t.max_asa:g} s")
    if t.max_occupancy is not None:
        parts.append(f"occupancy <= {_pct(t.max_occupancy)}")
    if t.max_abandon is not None:
        parts.append(f"abandonment <= {_pct(t.max_abandon)}")
    return "; ".join(parts)


def _row_text(m: ErlangCResult | ErlangAResult, marked: bool) -> str:
    mark = ">" if marked else " "
    if isinstance(m, ErlangCResult) and not m.stable:
        return f"{mark}{m.agents:>5}  unstable: N <= A, the queue grows without bound"
    abandon = f"{m.p_abandon:>8.4f}" if isinstance(m, ErlangAResult) else ""
    return (f"{mark}{m.agents:>5}  {m.p_wait:>6.4f}{abandon}  {m.service_level:>6.4f}  "
            f"{m.asa:>8.2f}  {m.occupancy * 100:>8.1f}%")


def _summary(m: ErlangCResult | ErlangAResult) -> str:
    if isinstance(m, ErlangCResult) and not m.stable:
        return "unstable (N <= A): every caller waits, SL 0, ASA infinite"
    abandon = f", P(abandon) {m.p_abandon:.4f}" if isinstance(m, ErlangAResult) else ""
    return (f"Pw {m.p_wait:.4f}{abandon}, SL {m.service_level:.4f} in {m.sl_seconds:g} s, "
            f"ASA {m.asa:.2f} s, occupancy {m.occupancy * 100:.1f}%")


def _table_text(rows: Iterable[ErlangCResult | ErlangAResult], marked: int, with_abandon: bool) -> list[str]:
    head = f"{'N':>6}  {'Pw':>6}{'P(ab)':>8}" if with_abandon else f"{'N':>6}  {'Pw':>6}"
    lines = [f"{head}  {'SL':>6}  {'ASA (s)':>8}  {'occupancy':>9}"]
    lines += [_row_text(m, m.agents == marked) for m in rows]
    return lines


def _rows(centre: int, traffic: float, aht: float, sl_seconds: float,
          patience: float | None) -> list[ErlangCResult | ErlangAResult]:
    low = max(1, centre - _TABLE_REACH)
    return [evaluate(n, traffic, aht, sl_seconds, patience) for n in range(low, centre + _TABLE_REACH + 1)]


# ---------------------------------------------------------------------------- erlang-c / erlang-a
def _agents_command(*, fmt: str, traffic: float, aht: float, targets: Targets | None,
                    sl_seconds: float, agents: int | None, patience: float | None) -> None:
    model = "Erlang A" if patience is not None else "Erlang C"
    result: StaffingResult | None = None
    if targets is not None:
        result = agents_needed(traffic, aht, targets, patience=patience)
    evaluated = evaluate(agents, traffic, aht, sl_seconds, patience) if agents is not None else None
    centre = result.agents if result is not None else agents
    assert centre is not None  # the command insists on a target or --agents
    rows = _rows(centre, traffic, aht, sl_seconds, patience)

    if fmt == "json":
        payload: dict[str, Any] = {"model": model.lower().replace(" ", "_"), "traffic_erlangs": traffic,
                                   "aht_seconds": aht, "patience_seconds": patience}
        if result is not None and targets is not None:
            payload.update(targets=asdict(targets), required_agents=result.agents,
                           scheduled_agents=result.scheduled_agents, binding=list(result.binding),
                           per_constraint=result.per_constraint, metrics=asdict(result.metrics))
        if evaluated is not None:
            payload["evaluated"] = asdict(evaluated)
        payload["table"] = [asdict(m) for m in rows]
        _emit_json(payload)
        return

    patience_text = f", mean patience {patience:g} s" if patience is not None else ""
    click.echo(f"{model}: {traffic:.2f} Erlangs offered, AHT {aht:g} s{patience_text}")
    if result is not None and targets is not None:
        click.echo(f"targets: {_targets_text(targets)}")
        binding = ", ".join(_LABELS[b] for b in result.binding)
        click.echo(f"required agents: {result.agents} (binding: {binding})")
        per = ", ".join(f"{_LABELS[k]} {v}" for k, v in sorted(result.per_constraint.items(), key=lambda kv: kv[1]))
        click.echo(f"  smallest N per constraint: {per}")
        if targets.shrinkage:
            click.echo(f"scheduled agents: {result.scheduled_agents} (with {_pct(targets.shrinkage)} shrinkage)")
    if evaluated is not None:
        click.echo(f"with {agents} agents: {_summary(evaluated)}")
    click.echo("")
    for line in _table_text(rows, centre, with_abandon=patience is not None):
        click.echo(line)


def _make_targets(sl: tuple[float, float] | None, asa: float | None, max_occupancy: float | None,
                  max_abandon: float | None, shrinkage: float, agents: int | None,
                  target_flags: str) -> tuple[Targets | None, float]:
    # Without --sl the table still shows an SL column, measured at the customary 20 s.
    sl_target, sl_seconds = sl if sl is not None else (None, 20.0)
    if all(t is None for t in (sl_target, asa, max_occupancy, max_abandon)):
        if agents is None:
            raise click.UsageError(f"give a target ({target_flags}) or --agents")
        return None, sl_seconds
    targets = Targets(service_level=sl_target, sl_seconds=sl_seconds, max_asa=asa,
                      max_occupancy=max_occupancy, max_abandon=max_abandon, shrinkage=shrinkage)
    return targets, sl_seconds


def _target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--sl", type=ServiceLevel(), help="Service-level target percent/seconds, e.g. 80/20."),
        click.option("--asa", type=Duration(), help="Maximum average speed of answer (seconds)."),
        click.option("--max-occupancy", type=Share(), help="Maximum occupancy, e.g. 0.85 or 85%."),
        click.option("--shrinkage", type=Share(), default=0.0, show_default=True,
                     help="Share of paid time off the phones, e.g. 0.3 or 30%."),
        click.option("--agents", type=click.IntRange(min=1), help="Also show the metrics for this many agents."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("staffing")
def staffing() -> None:
    """Staffing maths: agents for a service level (Erlang C / A), trunks for a blocking (Erlang B)."""


def _size_agents(calls, interval, traffic, aht, fmt, sl, asa, max_occupancy, max_abandon, shrinkage, agents,
                 *, patience: float | None, target_flags: str) -> None:
    """The body of erlang-c and erlang-a: the same sizing, with or without caller patience."""

    def run() -> None:
        load = _traffic(calls, interval, traffic, aht)
        targets, sl_seconds = _make_targets(sl, asa, max_occupancy, max_abandon, shrinkage, agents, target_flags)
        _agents_command(fmt=fmt, traffic=load, aht=aht, targets=targets, sl_seconds=sl_seconds,
                        agents=agents, patience=patience)

    _model_errors(run)


@staffing.command("erlang-c")
@_load_options(aht_required=True)
@_target_options
def erlang_c_command(calls: float | None, interval: float | None, traffic: float | None, aht: float,
                     fmt: str, sl: tuple[float, float] | None, asa: float | None,
                     max_occupancy: float | None, shrinkage: float, agents: int | None) -> None:
    """Agents needed with infinitely patient callers (M/M/N)."""
    _size_agents(calls, interval, traffic, aht, fmt, sl, asa, max_occupancy, None, shrinkage, agents,
                 patience=None, target_flags="--sl, --asa, --max-occupancy")


@staffing.command("erlang-a")
@_load_options(aht_required=True)
@_target_options
@click.option("--patience", type=Duration(), required=True,
              help="Callers' mean patience before hanging up (seconds, or 2m etc.).")
@click.option("--max-abandon", type=Share(), help="Maximum share of callers abandoning, e.g. 0.05 or 5%.")
def erlang_a_command(calls: float | None, interval: float | None, traffic: float | None, aht: float,
                     fmt: str, sl: tuple[float, float] | None, asa: float | None,
                     max_occupancy: float | None, shrinkage: float, agents: int | None,
                     patience: float, max_abandon: float | None) -> None:
    """Agents needed when callers abandon (M/M/N+M, Palm/Erlang A)."""
    _size_agents(calls, interval, traffic, aht, fmt, sl, asa, max_occupancy, max_abandon, shrinkage, agents,
                 patience=patience, target_flags="--sl, --asa, --max-occupancy, --max-abandon")


# ---------------------------------------------------------------------------- erlang-b
@staffing.command("erlang-b")
@_load_options(aht_required=False)
@click.option("--blocking", type=Share(), help="Target blocking probability, e.g. 0.01 or 1%.")
@click.option("--trunks", type=click.IntRange(min=0), help="Blocking for this many trunks instead.")
def erlang_b_command(calls: float | None, interval: float | None, traffic: float | None,
                     aht: float | None, fmt: str, blocking: float | None, trunks: int | None) -> None:
    """Trunks needed for a blocking target, or the blocking of a trunk count (Erlang B)."""
    if (blocking is None) == (trunks is None):
        raise click.UsageError("give exactly one of --blocking and --trunks")

    def run() -> None:
        load = _traffic(calls, interval, traffic, aht)
        needed = trunks_for_blocking(load, blocking) if blocking is not None else None
        centre = needed if needed is not None else trunks
        assert centre is not None
        rows = [(n, erlang_b(n, load)) for n in range(max(0, centre - _TABLE_REACH), centre + _TABLE_REACH + 1)]
        if fmt == "json":
            payload: dict[str, Any] = {"model": "erlang_b", "traffic_erlangs": load}
            if needed is not None:
                payload.update(target_blocking=blocking, trunks_needed=needed, blocking=erlang_b(needed, load))
            else:
                payload.update(trunks=trunks, blocking=erlang_b(centre, load))
            payload["table"] = [{"trunks": n, "blocking": b, "carried_erlangs": load * (1 - b)} for n, b in rows]
            _emit_json(payload)
            return
        click.echo(f"Erlang B: {load:.2f} Erlangs offered")
        if needed is not None:
            click.echo(f"trunks needed: {needed} (blocking {erlang_b(needed, load):.4f} <= target {blocking:g})")
        else:
            click.echo(f"blocking with {trunks} trunks: {erlang_b(centre, load):.4f}")
        click.echo("")
        click.echo(f"{'trunks':>7}  {'blocking':>8}  {'carried (Erl)':>13}")
        for n, b in rows:
            click.echo(f"{'>' if n == centre else ' '}{n:>6}  {b:>8.4f}  {load * (1 - b):>13.2f}")

    _model_errors(run)
