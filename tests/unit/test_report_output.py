"""KPI report output: CSV rows, the matplotlib charts, the one-file HTML page and the
`callcenter report kpis --format csv / --png / --html` options, on the KPI tests' own story."""

from __future__ import annotations

import base64
import csv
import io
import math
import re
from dataclasses import dataclass, fields
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from callcenter.cli import main
from callcenter.kpi import report_cli
from callcenter.kpi.charts import (
    DPI,
    FIG_SIZE,
    REQUIRED_LABEL,
    SL_LINE_LABEL,
    html_page,
    kpi_figure,
    save_png,
    staffing_figure,
)
from callcenter.kpi.definitions import QueueKpis, kpi_report
from callcenter.kpi.export import LEADING_COLUMNS, report_rows, write_csv
from tests.unit.test_kpis import STORY, T0, rows_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT_QUEUE = "<script>x</script>"

# The KPI tests' story (queue support, 09:00:00-09:03:20 UTC), then in quarter hours:
# 09:15 only a short abandon (a queue row with nothing offered), 09:30 nothing at all,
# 09:45 one call answered within the threshold in a queue whose name is markup.
LATER: list[tuple] = [
    (1000, "queued", "S", "support", None, {"priority": 0}),
    (1002, "abandoned", "S", "support", None, {"wait": 2.0, "stage": "waiting"}),
    (2800, "queued", "X", SCRIPT_QUEUE, None, {"priority": 0}),
    (2810, "answered", "X", SCRIPT_QUEUE, "1001", {"offer_id": "X/1", "wait": 10.0}),
]
ROWS = rows_of(STORY + LATER)
END = T0 + 2810


def quarter_hours(**kw):
    return kpi_report(ROWS, interval="15m", tz="Asia/Shanghai", now=END, **kw)


def row_for(rows, interval_index, name, scope="queue"):
    labels = sorted({r["interval"] for r in rows})
    (row,) = [r for r in rows if r["interval"] == labels[interval_index] and r["scope"] == scope and r["name"] == name]
    return row


# ---------------------------------------------------------------------------- CSV
def test_rows_one_per_interval_and_scope():
    report = quarter_hours()
    rows = report_rows(report)
    assert [(r["interval"][11:16], r["scope"], r["name"]) for r in rows] == [
        ("17:00", "queue", "*"), ("17:00", "queue", "support"), ("17:00", "agent", "1001"), ("17:00", "agent", "1002"),
        ("17:15", "queue", "*"), ("17:15", "queue", "support"),
        ("17:30", "queue", "*"),
        ("17:45", "queue", "*"), ("17:45", "queue", SCRIPT_QUEUE), ("17:45", "agent", "1001"),
    ]
    first = rows[1]
    assert (first["interval_start"], first["interval_end"]) == ("2024-03-01T17:00:00+08:00", "2024-03-01T17:15:00+08:00")
    # every figure of the dataclasses, nested ones dotted, the name field moved to `name`
    assert list(first)[:5] == list(LEADING_COLUMNS)
    assert {"service_level.of_offered", "service_level.threshold", "asa", "aht"} <= set(first)
    assert "queue" not in first and "service_level" not in first
    assert "agent_id" not in rows[2] and rows[2]["occupancy"] == 110 / 145


def test_csv_round_trips_through_dictreader():
    report = quarter_hours()
    buffer = io.StringIO(newline="")
    assert write_csv(report, buffer) == 10
    read = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    expected = report_rows(report)
    assert len(read) == len(expected)
    for got, want in zip(read, expected, strict=True):
        for column, cell in got.items():
            value = want.get(column)  # queue-only columns on an agent row and vice versa: empty
            if value is None:
                assert cell == "", (column, want)
            elif isinstance(value, str):
                assert cell == value
            else:
                assert type(value)(cell) == value, (column, cell, value)  # exact: floats are repr'd
    support = row_for(read, 0, "support")
    assert (support["offered"], support["answered"], support["service_level.of_offered"]) == ("5", "2", "0.2")
    assert support["asa"] == "25.5" and support["aht"] == "87.5"
    agent = row_for(read, 0, "1002", scope="agent")
    assert float(agent["occupancy"]) == 65 / 101 and agent["offered"] == ""


def test_csv_no_data_is_an_empty_cell_not_zero():
    read = list(csv.DictReader(io.StringIO(_csv(quarter_hours()))))
    only_short = row_for(read, 1, "support")  # 17:15: one short abandon, nothing offered
    assert (only_short["queued"], only_short["short_abandoned"], only_short["offered"]) == ("1", "1", "0")
    for column in ("service_level.of_offered", "service_level.of_answered", "abandon_rate", "asa", "aht"):
        assert only_short[column] == "", column
    empty = row_for(read, 2, "*")  # 17:30: no call at all
    assert (empty["offered"], empty["service_level.of_offered"]) == ("0", "")


def test_new_fields_become_columns_without_code_changes():
    # Stands in for fields added later: a richer QueueKpis.
    @dataclass(frozen=True)
    class Transfers:
        blind: int
        attended: int

    @dataclass(frozen=True)
    class RicherQueueKpis(QueueKpis):
        parked_time: float | None = None
        transfers: Transfers | None = None

    report = kpi_report(ROWS, now=END)
    interval = report.intervals[0]
    richer = RicherQueueKpis(**{f.name: getattr(interval.total, f.name) for f in fields(interval.total)},
                             parked_time=None, transfers=Transfers(blind=2, attended=1))
    patched = type(report)(**{**{f.name: getattr(report, f.name) for f in fields(report)},
                              "intervals": (type(interval)(**{**{f.name: getattr(interval, f.name)
                                                                 for f in fields(interval)}, "total": richer}),)})
    row = next(csv.DictReader(io.StringIO(_csv(patched)), strict=True))
    assert row["name"] == "*"
    assert (row["parked_time"], row["transfers.blind"], row["transfers.attended"]) == ("", "2", "1")


def test_queue_filter_does_not_repeat_the_queue_as_total():
    rows = report_rows(kpi_report(ROWS, queue="support", now=END))
    assert [(r["scope"], r["name"]) for r in rows if r["scope"] == "queue"] == [("queue", "support")]


def test_empty_report_is_a_header_only():
    assert _csv(kpi_report([])).splitlines() == [",".join(LEADING_COLUMNS)]


def _csv(report) -> str:
    buffer = io.StringIO(newline="")
    write_csv(report, buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- charts
def line_labelled(fig, label):
    (line,) = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == label]
    return line


def test_sl_line_has_gaps_where_nothing_was_offered():
    fig = kpi_figure(quarter_hours(), sl_target=0.8)
    sl = list(line_labelled(fig, SL_LINE_LABEL).get_ydata())
    assert len(sl) == 4
    assert sl[0] == pytest.approx(20.0) and sl[3] == pytest.approx(100.0)
    # 17:15 (only a short abandon) and 17:30 (no call): no data, neither 0 % nor 100 %
    assert math.isnan(sl[1]) and math.isnan(sl[2])
    target = line_labelled(fig, "target 80 %")
    assert target.get_linestyle() == "--" and list(target.get_ydata()) == [80.0, 80.0]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in fig.axes[0].containers}
    assert bars == {"offered": [5, 0, 0, 1], "answered": [2, 0, 0, 1], "abandoned": [2, 0, 0, 0]}


def test_kpi_figure_rejects_a_percent_target():
    with pytest.raises(ValueError):
        kpi_figure(quarter_hours(), sl_target=80)


def test_staffing_figure_gaps_and_bars():
    fig = staffing_figure(["08:00", "08:30", "09:00"], required=[3.0, None, 5.0], staffed=[3, 4, None],
                          forecast_calls=[40.0, 55.5, None])
    required = list(line_labelled(fig, REQUIRED_LABEL).get_ydata())
    assert required[0] == 3.0 and math.isnan(required[1]) and required[2] == 5.0
    (staffed,) = fig.axes[0].containers
    assert [p.get_height() for p in staffed.patches] == [3, 4]  # no bar for the unknown interval
    forecast = list(line_labelled(fig, "forecast calls").get_ydata())
    assert forecast[:2] == [40.0, 55.5] and math.isnan(forecast[2])
    with pytest.raises(ValueError):
        staffing_figure(["08:00"], required=[1.0, 2.0], staffed=[1.0])


def png_size(data: bytes) -> tuple[int, int]:
    # IHDR is the first chunk: width and height are its first two big-endian 32-bit fields.
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("make", [
    lambda: kpi_figure(quarter_hours(), sl_target=0.8),
    lambda: kpi_figure(kpi_report([]), sl_target=0.8),
    lambda: staffing_figure([f"{h:02d}:00" for h in range(48)], [float(h % 7) for h in range(48)],
                            [h % 5 for h in range(48)]),
], ids=["kpis", "kpis-no-data", "staffing"])
def test_png_files(tmp_path, make):
    path = save_png(make(), tmp_path / "chart.png")
    assert path.is_file()
    assert png_size(path.read_bytes()) == (FIG_SIZE[0] * DPI, FIG_SIZE[1] * DPI) == (1000, 500)


# ---------------------------------------------------------------------------- HTML
class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.sources += [value for name, value in attrs if name in {"src", "href"}]


def test_html_page_is_escaped_and_self_contained():
    report = quarter_hours()
    queues = [r for r in report_rows(report) if r["scope"] == "queue"]
    page = html_page(f"KPIs {SCRIPT_QUEUE} & co", [(f"chart of {SCRIPT_QUEUE}", kpi_figure(report, sl_target=0.8))],
                     [("Queues", queues)])
    assert SCRIPT_QUEUE not in page and "<script" not in page.lower()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "KPIs &lt;script&gt;x&lt;/script&gt; &amp; co" in page
    parser = Tags()
    parser.feed(page)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "figure", "img",
                           "figcaption", "div", "table", "thead", "tbody", "tr", "th", "td", "p"}
    (src,) = parser.sources
    assert src.startswith("data:image/png;base64,")
    assert png_size(base64.b64decode(src.split(",", 1)[1]))[0] == 1000
    assert not re.search(r"(?i)(https?:|//)[^ ]*\.(js|css|png|svg)|url\(", page)
    assert "service_level.of_offered" in page


def test_html_table_none_is_empty_and_no_rows_is_said():
    page = html_page("t", [], [("one", [{"a": None, "b": 0.123456, "c": 3}]), ("none", [])])
    assert '<td></td><td class="number">0.123</td><td class="number">3</td>' in page
    assert "<p>no rows</p>" in page


# ---------------------------------------------------------------------------- CLI on a real database
@pytest.fixture
def db_config(events_config):
    return events_config(ROWS)


def kpis(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), "report", "kpis", *args])


def test_cli_csv(db_config):
    result = kpis(db_config, "--format", "csv", "--interval", "15m", "--tz", "Asia/Shanghai")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # not a terminal: no progress bar
    read = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in read if r["scope"] == "queue"] == ["*", "support", "*", "support", "*", "*", SCRIPT_QUEUE]
    support = row_for(read, 0, "support")
    assert (support["offered"], support["service_level.of_offered"], support["aht"]) == ("5", "0.2", "87.5")
    assert row_for(read, 1, "support")["service_level.of_offered"] == ""


def test_cli_png_and_html(db_config, tmp_path):
    png, page = tmp_path / "kpis.png", tmp_path / "kpis.html"
    result = kpis(db_config, "--format", "json", "--interval", "15m", "--png", str(png), "--html", str(page))
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith("{")  # the messages go to stderr, the JSON stays clean
    assert f"chart written to {png}" in result.stderr and f"HTML report written to {page}" in result.stderr
    assert png_size(png.read_bytes()) == (1000, 500)
    text = page.read_text(encoding="utf-8")
    assert SCRIPT_QUEUE not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "80 % answered within 20 s" in text and "data:image/png;base64," in text


def test_cli_progress_only_on_a_terminal(db_config, monkeypatch):
    assert "reading events" not in kpis(db_config).stderr
    monkeypatch.setattr(report_cli, "stderr_is_tty", lambda: True)
    result = kpis(db_config, "--format", "csv")
    assert result.exit_code == 0, result.output
    # CliRunner's stderr is no terminal, so click prints the label only (a real one gets the bar)
    assert "reading events" in result.stderr
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 5  # "*", the two queues, 1001, 1002


def test_cli_chart_rejects_a_target_above_100_percent(db_config, tmp_path):
    result = kpis(db_config, "--sl", "150/20", "--png", str(tmp_path / "k.png"))
    assert result.exit_code == 2 and "--sl" in result.output and not (tmp_path / "k.png").exists()
