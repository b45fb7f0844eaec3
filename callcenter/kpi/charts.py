"""KPI and staffing charts (matplotlib) and the one-file HTML report page that embeds them.

This module owns how figures are drawn, never what they are: the numbers come from a
:class:`~callcenter.kpi.definitions.KpiReport` or from plain per-interval lists (the staffing
chart is fed by a forecast module, so it takes lists, not a forecast type).

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
``pyplot``: no GUI backend can be picked up from the environment, no global figure registry keeps
them alive, and nothing here changes the process-wide backend for other code.

"No data" stays visible as no data: a ratio that is ``None`` is drawn as a gap (NaN) in its line,
never as 0 % or 100 %.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from callcenter.kpi.definitions import KpiReport

FIG_SIZE = (10.0, 5.0)  # inches
DPI = 100  # with FIG_SIZE: 1000 x 500 px PNGs, readable on a screen and in a mail
MAX_TICK_LABELS = 24  # more interval labels than this overlap; every n-th is shown instead

SL_LINE_LABEL = "service level (of offered)"
REQUIRED_LABEL = "agents required"
STAFFED_LABEL = "agents staffed"
FORECAST_LABEL = "forecast calls"

_OFFERED, _ANSWERED, _ABANDONED = "#9e9e9e", "#2e7d32", "#c62828"
_SL, _TARGET = "#1565c0", "#0d47a1"
_STAFFED, _SHORT = "#90caf9", "#ef9a9a"


# ---------------------------------------------------------------------------- figures
def new_figure() -> Figure:
    """An empty figure of the standard size, on the Agg (file-only) canvas."""
    fig = Figure(figsize=FIG_SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def kpi_figure(report: KpiReport, *, sl_target: float) -> Figure:
    """Per interval: offered / answered / abandoned bars and the service level line (of offered).

    Figures are the interval's total (all queues, or the one queue the report was limited to).
    ``sl_target`` is a fraction (0.8 for 80 %), as ``--sl 80/20`` gives it; it is drawn dashed.
    An interval with no offered call has no service level: its point is missing, not 0 %.
    """
    if not 0 <= sl_target <= 1:
        raise ValueError(f"sl_target is a fraction between 0 and 1, not {sl_target!r}")
    fig = new_figure()
    volume = fig.add_subplot()
    intervals = report.intervals
    if not intervals:
        _no_data(volume)
        return fig
    totals = [i.total for i in intervals]
    x = list(range(len(intervals)))
    width = 0.27
    for offset, values, label, color in (
            (-width, [t.offered for t in totals], "offered", _OFFERED),
            (0.0, [t.answered for t in totals], "answered", _ANSWERED),
            (width, [t.abandoned for t in totals], "abandoned", _ABANDONED)):
        volume.bar([p + offset for p in x], values, width, label=label, color=color)
    volume.set_ylabel("calls")
    volume.yaxis.set_major_locator(MaxNLocator(integer=True))

    level = volume.twinx()
    # Markers: a point between two gaps has no segment and would be invisible without one.
    level.plot(x, [_percent(t.service_level.of_offered) for t in totals], color=_SL, marker="o",
               markersize=5 if len(x) <= 48 else 2, label=SL_LINE_LABEL)
    level.axhline(sl_target * 100, color=_TARGET, linestyle="--", linewidth=1,
                  label=f"target {sl_target * 100:g} %")
    level.set_ylim(0, 105)
    level.yaxis.set_major_formatter(PercentFormatter(xmax=100))
    level.set_ylabel(f"answered within {report.sl_seconds:g} s")

    ticks, axis_label = _interval_ticks(report)
    _label_intervals(volume, ticks)
    volume.set_xlabel(axis_label)
    scope = totals[0].queue
    volume.set_title(f"Calls and service level, {'all queues' if scope == '*' else 'queue ' + scope}")
    _legend(fig, volume, level)
    return fig


def staffing_figure(labels: list[str], required: list[float | None], staffed: list[float | None],
                    forecast_calls: list[float | None] | None = None) -> Figure:
    """Agents required (line) against agents staffed (bars) per interval, and forecast calls.

    Bars where staffing falls short of the requirement are red. ``None`` is an interval with no
    figure: no bar, a gap in the line.
    """
    series = {"required": required, "staffed": staffed}
    if forecast_calls is not None:
        series["forecast_calls"] = forecast_calls
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"{name} has {len(values)} values for {len(labels)} intervals")
    fig = new_figure()
    agents = fig.add_subplot()
    if not labels:
        _no_data(agents)
        return fig
    x = list(range(len(labels)))
    present = [i for i in x if staffed[i] is not None]
    short = [required[i] is not None and staffed[i] < required[i] for i in present]  # type: ignore[operator]
    agents.bar(present, [staffed[i] for i in present], 0.6, label=STAFFED_LABEL,
               color=[_SHORT if s else _STAFFED for s in short])
    # The bars' legend entry shows only the first colour; say what the other one means.
    extra = [Patch(color=_SHORT, label="staffed below required")] if any(short) else []
    agents.plot(x, [_nan(v) for v in required], color="#212121", marker="o", label=REQUIRED_LABEL)
    agents.set_ylabel("agents")
    agents.yaxis.set_major_locator(MaxNLocator(integer=True))
    _label_intervals(agents, labels)
    agents.set_title("Agents required and staffed")
    axes = [agents]
    if forecast_calls is not None:
        calls = agents.twinx()
        calls.plot(x, [_nan(v) for v in forecast_calls], color="#6a1b9a", linestyle=":", marker=".",
                   label=FORECAST_LABEL)
        calls.set_ylabel("calls")
        calls.set_ylim(bottom=0)
        axes.append(calls)
    _legend(fig, *axes, extra=extra)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG of its own size (``FIG_SIZE`` x ``DPI`` unless changed)."""
    path = Path(path)
    # No bbox_inches="tight": it would crop to the drawing and change the pixel size.
    fig.savefig(path, format="png", dpi=fig.dpi)
    return path


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- HTML page
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #212121; }
img { max-width: 100%; height: auto; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #bdbdbd; padding: 0.2em 0.5em; white-space: nowrap; }
th { background: #eeeeee; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""
# Defence in depth for a page mailed around: nothing can load from elsewhere and no script runs,
# even if some text slipped through unescaped.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def html_page(title: str, figures: list[tuple[str, Figure]], tables: list[tuple[str, list[dict]]]) -> str:
    """One self-contained HTML page: each figure as a base64 PNG, each table as an HTML table.

    Every text (title, captions, column names, cells) is HTML-escaped: queue names and agent ids
    come from configuration and telephony, not from us. No external resource, no JavaScript.
    ``None`` cells are empty (no data), never 0.
    """
    e = _escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{e(_CSP)}">',
             f"<title>{e(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{e(title)}</h1>"]
    for caption, fig in figures:
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        parts += ["<figure>", f'<img src="data:image/png;base64,{data}" alt="{e(caption)}">',
                  f"<figcaption>{e(caption)}</figcaption>", "</figure>"]
    for caption, rows in tables:
        parts += [f"<h2>{e(caption)}</h2>", _table(rows)]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>no rows</p>"
    names = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{_escape(name)}</th>" for name in names)
    body = []
    for row in rows:
        cells = []
        for name in names:
            value = row.get(name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="number">{_escape(_text(value))}</td>' if numeric
                         else f"<td>{_escape(_text(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="table"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        # Three decimals are enough to read a rate or a time; the CSV has the exact values.
        return "nan" if math.isnan(value) else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------- helpers
def _nan(value: float | None) -> float:
    # NaN makes matplotlib break the line there: no data is a gap, not a point at 0.
    return math.nan if value is None else float(value)


def _percent(share: float | None) -> float:
    return math.nan if share is None else share * 100


def _interval_ticks(report: KpiReport) -> tuple[list[str], str]:
    """Short tick labels in the report's time zone, and the axis label that completes them."""
    zone = ZoneInfo(report.tz)
    starts = [datetime.fromtimestamp(i.start, zone) for i in report.intervals]
    if report.interval is None:
        return [i.label for i in report.intervals], f"whole period ({report.tz})"
    if report.interval == "day":
        return [s.strftime("%Y-%m-%d") for s in starts], f"day ({report.tz})"
    if len({s.date() for s in starts}) == 1:
        return [s.strftime("%H:%M") for s in starts], f"{starts[0].date().isoformat()} ({report.tz})"
    return [s.strftime("%m-%d %H:%M") for s in starts], f"local time ({report.tz})"


def _label_intervals(ax: Any, labels: Sequence[str]) -> None:
    step = max(1, math.ceil(len(labels) / MAX_TICK_LABELS))
    positions = list(range(0, len(labels), step))
    ax.set_xticks(positions, [labels[p] for p in positions])
    if any(len(labels[p]) > 5 for p in positions) and len(positions) > 6:
        for text in ax.get_xticklabels():
            text.set_rotation(45)
            text.set_horizontalalignment("right")
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _legend(fig: Figure, *axes: Any, extra: Sequence[Any] = ()) -> None:
    handles, names = [], []
    for ax in axes:
        h, n = ax.get_legend_handles_labels()
        handles += h
        names += n
    handles += extra
    names += [handle.get_label() for handle in extra]
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize="small", frameon=False)


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
