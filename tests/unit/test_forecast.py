"""Weekly forecast, staffing plan, staffed agents and the schedule view
(``callcenter.kpi.forecast``), on hand-built histories whose answers are known."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.kpi.definitions import CallRecord, StateSpan, agent_kpis, kpi_report
from callcenter.kpi.forecast import (
    AHT_NONE,
    AHT_OVERALL,
    AHT_SLOT,
    AHT_SLOT_OF_DAY,
    NO_AHT,
    NO_HISTORY,
    ForecastError,
    ForecastSlot,
    HistoryCall,
    history_from_calls,
    schedule_view,
    staffed_agents,
    staffing_plan,
    weekly_forecast,
    week_slots,
)
from callcenter.kpi.staffing import StaffingError, scheduled_agents

SHANGHAI = "Asia/Shanghai"
PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
UTC = "UTC"
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def at(tz: str, day: date, hour: int = 0, minute: int = 0, second: int = 0, fold: int = 0) -> float:
    """Epoch of a local wall-clock time (fold=1: the second pass of a repeated hour)."""
    return datetime(day.year, day.month, day.day, hour, minute, second,
                    tzinfo=ZoneInfo(tz), fold=fold).timestamp()


def calls_at(tz: str, day: date, hour: int, minute: int, count: int,
             handle_time: float | None = None) -> list[HistoryCall]:
    """``count`` calls a minute apart from the given local time."""
    start = at(tz, day, hour, minute)
    return [HistoryCall(start + 60 * i, handle_time) for i in range(count)]


def slot_of(forecast, weekday: int, minute: int):
    return next(s for s in forecast if (s.weekday, s.minute) == (weekday, minute))


def fslot(calls, aht, weekday=MON, minute=9 * 60, interval=30, source=AHT_SLOT) -> ForecastSlot:
    return ForecastSlot(weekday=weekday, minute=minute, calls=calls, aht=aht, aht_source=source,
                        weeks=8, interval_minutes=interval, aht_handled=100)


# `until` is Monday 4 March 2024; its day is partial, so the window ends at its midnight and
# week 1 is 26 Feb - 3 Mar, week 2 is 19 - 25 Feb, ...
UNTIL_DAY = date(2024, 3, 4)


def monday(weeks_back: int) -> date:
    return UNTIL_DAY - timedelta(weeks=weeks_back)


# ---------------------------------------------------------------------------- calls per slot
def test_steady_weekly_pattern_gives_exact_counts_in_local_slots():
    history = [HistoryCall(at(SHANGHAI, monday(5) + timedelta(days=6), 23, 0))]  # history begins
    for weeks_back in range(1, 5):
        history += calls_at(SHANGHAI, monday(weeks_back), 9, 0, 3)  # Mon 09:00-09:02
        history += calls_at(SHANGHAI, monday(weeks_back) + timedelta(days=4), 17, 30, 7)  # Fri 17:30
    # The partial day of `until` (before and after it) and a week outside the window: ignored.
    history += calls_at(SHANGHAI, UNTIL_DAY, 9, 0, 50) + calls_at(SHANGHAI, UNTIL_DAY, 11, 0, 50)
    history += calls_at(SHANGHAI, monday(5), 9, 0, 50)
    until = at(SHANGHAI, UNTIL_DAY, 10, 0)

    forecast = weekly_forecast(history, tz=SHANGHAI, interval_minutes=30, until=until, weeks=4)

    assert [(s.weekday, s.minute) for s in forecast] == week_slots(30)
    assert len(forecast) == 7 * 48
    expected = {(MON, 9 * 60): 3.0, (FRI, 17 * 60 + 30): 7.0}
    assert {(s.weekday, s.minute): s.calls for s in forecast} == {
        key: expected.get(key, 0.0) for key in week_slots(30)}
    assert {s.weeks for s in forecast} == {4}
    assert {s.interval_minutes for s in forecast} == {30}
    # Pure: the order of the history changes nothing.
    assert weekly_forecast(list(reversed(history)), tz=SHANGHAI, interval_minutes=30,
                           until=until, weeks=4) == forecast


def test_one_abnormal_week_does_not_move_the_median():
    history = [HistoryCall(at(UTC, monday(9), 0, 0))]
    for weeks_back in range(1, 9):
        count = {4: 100, 6: 0}.get(weeks_back, 10)  # a 10x campaign week and a holiday week
        history += calls_at(UTC, monday(weeks_back), 9, 0, count)
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=30,
                               until=at(UTC, UNTIL_DAY, 12), weeks=8)
    slot = slot_of(forecast, MON, 9 * 60)
    assert (slot.calls, slot.weeks) == (10.0, 8)  # the mean of these weeks would be 20


def test_median_of_an_even_number_of_weeks_is_the_middle_pair_mean():
    history = calls_at(UTC, monday(2), 9, 0, 10) + calls_at(UTC, monday(1), 9, 0, 30)
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=60, until=at(UTC, UNTIL_DAY), weeks=2)
    assert slot_of(forecast, MON, 9 * 60).calls == 20.0


def test_weeks_before_the_history_starts_are_not_zeros():
    # Only the last 3 of 8 weeks have history; the first call is Monday 12 Feb 09:00.
    history = []
    for weeks_back in (3, 2, 1):
        history += calls_at(UTC, monday(weeks_back), 9, 0, 10)
    until = at(UTC, UNTIL_DAY, 12)
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=30, until=until, weeks=8)

    monday_nine = slot_of(forecast, MON, 9 * 60)
    assert (monday_nine.calls, monday_nine.weeks) == (10.0, 3)  # zeros would make it 0
    assert slot_of(forecast, TUE, 9 * 60).weeks == 3
    # The history starts at Monday 09:00's slot: that week's Monday 08:30 was not observed.
    assert (slot_of(forecast, MON, 8 * 60 + 30).calls, slot_of(forecast, MON, 8 * 60 + 30).weeks) == (0.0, 2)

    # Told that observation started 8 weeks back, the quiet weeks are real zeros.
    observed = weekly_forecast(history, tz=UTC, interval_minutes=30, until=until, weeks=8,
                               observed_from=at(UTC, monday(8)))
    assert (slot_of(observed, MON, 9 * 60).calls, slot_of(observed, MON, 9 * 60).weeks) == (0.0, 8)


def test_history_starting_mid_week_observes_the_rest_of_that_week():
    history = calls_at(UTC, monday(2) + timedelta(days=2), 14, 0, 4)  # Wed 21 Feb 14:00
    history += calls_at(UTC, monday(1) + timedelta(days=2), 14, 0, 6)  # Wed 28 Feb 14:00
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=60, until=at(UTC, UNTIL_DAY), weeks=4)
    assert slot_of(forecast, MON, 14 * 60).weeks == 1
    assert slot_of(forecast, WED, 13 * 60).weeks == 1
    assert (slot_of(forecast, WED, 14 * 60).calls, slot_of(forecast, WED, 14 * 60).weeks) == (5.0, 2)
    assert slot_of(forecast, THU, 0).weeks == 2


def test_no_history_is_no_forecast_not_zero():
    forecast = weekly_forecast([], tz=UTC, interval_minutes=60, until=at(UTC, UNTIL_DAY))
    assert len(forecast) == 7 * 24
    assert {(s.calls, s.weeks, s.aht, s.aht_source, s.aht_handled) for s in forecast} == {
        (None, 0, None, AHT_NONE, 0)}


# ---------------------------------------------------------------------------- AHT
def test_aht_is_volume_weighted_across_weeks():
    history = calls_at(UTC, monday(2), 9, 0, 10, 100.0) + calls_at(UTC, monday(1), 9, 0, 30, 200.0)
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=60, until=at(UTC, UNTIL_DAY), weeks=2)
    slot = slot_of(forecast, MON, 9 * 60)
    # (10 x 100 + 30 x 200) / 40, not the mean of the weekly means (150)
    assert (slot.aht, slot.aht_source, slot.aht_handled) == (175.0, AHT_SLOT, 40)


def test_aht_falls_back_to_time_of_day_then_overall():
    week = monday(1)
    history = (calls_at(UTC, week, 9, 0, 12, 100.0)                            # Mon 09:00: 12 handled
               + calls_at(UTC, week, 9, 20, 5)                                 # ... and 5 abandoned
               + calls_at(UTC, week + timedelta(days=1), 9, 0, 3, 400.0)        # Tue 09:00: 3 handled
               + calls_at(UTC, week + timedelta(days=2), 14, 0, 2, 1000.0)      # Wed 14:00: 2 handled
               + calls_at(UTC, week + timedelta(days=3), 14, 0, 3))             # Thu 14:00: none handled
    until = at(UTC, UNTIL_DAY)
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=60, until=until, weeks=1)

    def aht(weekday, minute):
        s = slot_of(forecast, weekday, minute)
        return s.aht, s.aht_source, s.aht_handled

    assert slot_of(forecast, MON, 9 * 60).calls == 17.0  # abandoned calls are calls
    assert aht(MON, 9 * 60) == (100.0, AHT_SLOT, 12)
    assert aht(TUE, 9 * 60) == (pytest.approx((12 * 100 + 3 * 400) / 15), AHT_SLOT_OF_DAY, 15)
    overall = (pytest.approx((12 * 100 + 3 * 400 + 2 * 1000) / 17), AHT_OVERALL, 17)
    assert aht(WED, 14 * 60) == overall
    assert aht(THU, 14 * 60) == overall
    assert aht(SAT, 3 * 60) == overall  # a slot with no call still has an AHT to plan with

    lenient = weekly_forecast(history, tz=UTC, interval_minutes=60, until=until, weeks=1, min_handled=2)
    assert (slot_of(lenient, WED, 14 * 60).aht, slot_of(lenient, WED, 14 * 60).aht_source) == (1000.0, AHT_SLOT)


def test_no_handled_call_means_no_aht():
    history = calls_at(UTC, monday(1), 9, 0, 4)  # all abandoned
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=60, until=at(UTC, UNTIL_DAY), weeks=1)
    slot = slot_of(forecast, MON, 9 * 60)
    assert (slot.calls, slot.aht, slot.aht_source) == (4.0, None, AHT_NONE)


# ---------------------------------------------------------------------------- daylight saving
def test_spring_forward_week_keeps_local_slots_in_paris():
    # Paris moves from +01:00 to +02:00 at 02:00 on Sunday 31 March 2024. Window (1 week):
    # Tuesday 26 March to Monday 1 April.
    history = calls_at(PARIS, date(2024, 3, 25), 9, 10, 1)  # history begins before the window
    for offset in range(7):
        history += calls_at(PARIS, date(2024, 3, 26) + timedelta(days=offset), 9, 10, 5)
    sunday = date(2024, 3, 31)
    history += calls_at(PARIS, sunday, 1, 30, 1) + calls_at(PARIS, sunday, 3, 30, 1)
    forecast = weekly_forecast(history, tz=PARIS, interval_minutes=30,
                               until=at(PARIS, date(2024, 4, 2), 12), weeks=1)
    for weekday in range(7):
        assert slot_of(forecast, weekday, 9 * 60).calls == 5.0
        assert slot_of(forecast, weekday, 8 * 60 + 30).calls == 0.0
        assert slot_of(forecast, weekday, 9 * 60 + 30).calls == 0.0
    assert slot_of(forecast, SUN, 90).calls == 1.0
    assert slot_of(forecast, SUN, 120).calls == 0.0  # 02:00-02:30 did not exist that day
    assert slot_of(forecast, SUN, 210).calls == 1.0


def test_median_across_a_spring_forward_is_exact():
    # Four weeks, Tuesday 5 March to Monday 1 April: most in +01:00, the last days in +02:00.
    history = []
    for offset in range(29):
        history += calls_at(PARIS, date(2024, 3, 4) + timedelta(days=offset), 9, 10, 5)
    forecast = weekly_forecast(history, tz=PARIS, interval_minutes=60,
                               until=at(PARIS, date(2024, 4, 2), 12), weeks=4)
    for weekday in range(7):
        assert (slot_of(forecast, weekday, 9 * 60).calls, slot_of(forecast, weekday, 9 * 60).weeks) == (5.0, 4)
        assert slot_of(forecast, weekday, 8 * 60).calls == 0.0
        assert slot_of(forecast, weekday, 10 * 60).calls == 0.0


def test_fall_back_repeated_hour_is_one_local_slot_in_new_york():
    # New York repeats 01:00-02:00 on Sunday 5 November 2023 (EDT, then EST).
    sunday = date(2023, 11, 5)
    history = [HistoryCall(at(NEW_YORK, date(2023, 10, 29), 12))]
    history += [HistoryCall(at(NEW_YORK, sunday, 0, 45)),
                HistoryCall(at(NEW_YORK, sunday, 1, 15, fold=0)),
                HistoryCall(at(NEW_YORK, sunday, 1, 15, fold=1)),
                HistoryCall(at(NEW_YORK, sunday, 2, 15))]
    assert history[3].queued_at - history[2].queued_at == 3600  # really two different calls
    forecast = weekly_forecast(history, tz=NEW_YORK, interval_minutes=60,
                               until=at(NEW_YORK, date(2023, 11, 6), 12), weeks=1)
    assert [slot_of(forecast, SUN, m).calls for m in (0, 60, 120)] == [1.0, 2.0, 1.0]


# ---------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("kwargs", [
    {"interval_minutes": 20}, {"interval_minutes": True}, {"interval_minutes": 30.0}, {"weeks": 0}, {"weeks": 2.0},
    {"min_handled": 0}, {"tz": "Nowhere/Atlantis"}, {"until": math.nan}, {"observed_from": math.inf},
])
def test_forecast_rejects_impossible_parameters(kwargs):
    params = {"tz": UTC, "interval_minutes": 30, "until": at(UTC, UNTIL_DAY)} | kwargs
    with pytest.raises(ForecastError):
        weekly_forecast([], **params)


def test_history_call_rejects_bad_values():
    with pytest.raises(ForecastError):
        HistoryCall(math.nan)
    with pytest.raises(ForecastError):
        HistoryCall(0.0, -1.0)
    assert HistoryCall(0.0, 0.0).handle_time == 0.0


def test_history_from_calls_takes_the_reports_offered_calls_and_aht():
    def record(call_id, outcome, wait=None, talk=None, acw=None):
        return CallRecord(call_id=call_id, queue="sales", queued_at=float(len(call_id)), outcome=outcome,
                          wait=wait, talk=talk, acw=acw)

    calls = [record("a", "answered", 4.0, 100.0, 20.0),
             record("bb", "answered", 4.0, 100.0, None),  # wrap-up not over: no handle time
             record("ccc", "abandoned", 3.0),  # short abandon: left out
             record("dddd", "abandoned", 30.0),
             record("eeeee", "exited", 90.0),
             record("ffffff", None)]  # unresolved: left out
    assert history_from_calls(calls) == [HistoryCall(1.0, 120.0), HistoryCall(2.0, None),
                                         HistoryCall(4.0, None), HistoryCall(5.0, None)]
    assert len(history_from_calls(calls, short_abandon_seconds=0)) == 5


# ---------------------------------------------------------------------------- staffing plan
def test_plan_reference_fourteen_on_phones_twenty_scheduled():
    # docs/staffing.md: 100 calls in 30 min at AHT 180 s, 80 % in 20 s -> 14 agents;
    # shrinkage is applied last as ceil(N / (1 - shrinkage)) -> ceil(14 / 0.7) = 20.
    [slot] = staffing_plan([fslot(100.0, 180.0)], interval_minutes=30)
    assert (slot.traffic, slot.required_on_phones, slot.required_scheduled) == (10.0, 14, 20)
    assert slot.binding == ("service_level",)  # the 85 % occupancy cap needs only 12
    assert slot.error is None
    assert scheduled_agents(14, 0.3) == 20

    [no_shrink] = staffing_plan([fslot(100.0, 180.0)], interval_minutes=30, shrinkage=0.0)
    assert (no_shrink.required_on_phones, no_shrink.required_scheduled) == (14, 14)
    [with_asa] = staffing_plan([fslot(100.0, 180.0)], interval_minutes=30, asa=15.0)
    assert (with_asa.required_on_phones, with_asa.binding) == (14, ("service_level", "asa"))
    [occupancy_only] = staffing_plan([fslot(100.0, 180.0)], interval_minutes=30, sl_target=None)
    assert (occupancy_only.required_on_phones, occupancy_only.binding) == (12, ("occupancy",))


def test_plan_keeps_going_past_slots_it_cannot_compute():
    slots = [fslot(100.0, 180.0, minute=0), fslot(0.0, None, minute=30), fslot(None, None, minute=60),
             fslot(5.0, None, minute=90, source=AHT_NONE), fslot(5.0, 0.0, minute=120)]
    plan = staffing_plan(slots, interval_minutes=30)
    assert [p.minute for p in plan] == [0, 30, 60, 90, 120]
    assert [(p.required_on_phones, p.required_scheduled) for p in plan] == [
        (14, 20), (0, 0), (None, None), (None, None), (None, None)]
    assert [p.error for p in plan[:4]] == [None, None, NO_HISTORY, NO_AHT]
    assert "AHT" in plan[4].error  # the staffing module's own message


def test_plan_rejects_bad_targets_and_mismatched_intervals():
    with pytest.raises(StaffingError):
        staffing_plan([fslot(100.0, 180.0)], interval_minutes=30, sl_target=1.5)
    with pytest.raises(StaffingError):
        staffing_plan([fslot(100.0, 180.0)], interval_minutes=30, sl_target=None, max_occupancy=None)
    with pytest.raises(ForecastError):
        staffing_plan([fslot(100.0, 180.0, interval=30)], interval_minutes=15)
    with pytest.raises(ForecastError):
        staffing_plan([], interval_minutes=45)


def test_forecast_feeds_the_plan():
    history = calls_at(UTC, monday(1), 9, 0, 20, 180.0)
    forecast = weekly_forecast(history, tz=UTC, interval_minutes=60, until=at(UTC, UNTIL_DAY), weeks=1)
    plan = staffing_plan(forecast, interval_minutes=60, shrinkage=0.0)
    assert len(plan) == len(forecast)
    nine = slot_of(plan, MON, 9 * 60)
    assert (nine.calls, nine.aht, nine.traffic) == (20.0, 180.0, 1.0)
    assert nine.required_on_phones is not None and nine.required_on_phones >= 2
    assert slot_of(plan, MON, 10 * 60).required_on_phones == 0


# ---------------------------------------------------------------------------- staffed agents
T = at(UTC, UNTIL_DAY, 9)
SPANS = [
    StateSpan("1001", "available", T, T + 600),
    StateSpan("1001", "paused", T + 600, T + 900),
    StateSpan("1001", "on_call", T + 900, T + 1800),
    StateSpan("1002", "available", T - 300, T + 1200),  # clipped at the window's start
    StateSpan("1003", "available", T + 1500, None),  # still open
    StateSpan("1004", "paused", T, T + 1800),  # logged in, never available
    StateSpan("1005", "wrap_up", T + 1700, T + 2000),
]


def test_staffed_agents_excludes_paused_time_and_clips_to_bounds():
    # 1001: 600 + 900, 1002: 1200, 1003: 300 (open span clipped at the window end),
    # 1004: 0, 1005: 100 of its 300 s.
    assert staffed_agents(SPANS, T, T + 1800, until=T + 3600) == pytest.approx(3100 / 1800)


def test_open_spans_count_until_until_and_nothing_after_it():
    # until T+1700: 1001's call counts 800 s, 1003 200 s, 1005 nothing.
    assert staffed_agents(SPANS, T, T + 1800, until=T + 1700) == pytest.approx((600 + 800 + 1200 + 200) / 1800)
    # After `until` nothing is observed, the open span included; later `until`s extend it.
    assert staffed_agents(SPANS, T + 7200, T + 9000, until=T + 1700) == 0.0
    assert staffed_agents(SPANS, T + 7200, T + 9000, until=T + 8100) == 0.5


def test_staffed_time_is_the_reports_logged_in_minus_paused():
    for until in (T + 1700, T + 3600):
        report_time = sum(
            (k := agent_kpis(agent, [], [s for s in SPANS if s.agent_id == agent], 0, T, T + 1800, until))
            .logged_in_time - k.paused_time
            for agent in {s.agent_id for s in SPANS})
        assert staffed_agents(SPANS, T, T + 1800, until=until) * 1800 == pytest.approx(report_time)


def test_staffed_agents_needs_a_real_range():
    with pytest.raises(ForecastError):
        staffed_agents(SPANS, T, T, until=T)
    with pytest.raises(ForecastError):
        staffed_agents(SPANS, T, T - 1, until=T)


# ---------------------------------------------------------------------------- schedule view
def week_plan(interval: int, busy: tuple[int, int], calls: float, aht: float):
    """A plan with ``calls`` in one slot of the week and none elsewhere."""
    slots = [fslot(calls if (weekday, minute) == busy else 0.0, aht, weekday, minute, interval)
             for weekday, minute in week_slots(interval)]
    return staffing_plan(slots, interval_minutes=interval)


def test_schedule_rows_line_up_with_report_intervals():
    nine = at(SHANGHAI, UNTIL_DAY, 9)  # Monday 09:00 in Shanghai
    plan = week_plan(30, (MON, 9 * 60), 100.0, 180.0)
    spans = ([StateSpan(f"a{i}", "available", nine, nine + 1800) for i in range(15)]
             + [StateSpan(f"b{i}", "available", nine + 1800, nine + 3600) for i in range(2)]
             + [StateSpan("c", "available", nine + 1800, None)])
    start, end, until = nine - 1740, nine + 7200, nine + 4500  # 08:31, 11:00, 10:15
    rows = schedule_view(plan, spans, tz=SHANGHAI, interval_minutes=30, start=start, end=end, until=until)

    report = kpi_report([], interval="30m", tz=SHANGHAI, start=start, end=end, now=until)
    assert [(r.label, r.start, r.end) for r in rows] == [(i.label, i.start, i.end) for i in report.intervals]
    assert [r.label for r in rows] == [f"2024-03-04T{hm}:00+08:00" for hm in
                                       ("08:30", "09:00", "09:30", "10:00", "10:30")]
    assert [(r.weekday, r.minute) for r in rows] == [(MON, m) for m in (510, 540, 570, 600, 630)]

    assert [r.forecast_calls for r in rows] == [0.0, 100.0, 0.0, 0.0, 0.0]
    assert [r.forecast_aht for r in rows] == [180.0] * 5
    assert [(r.required_on_phones, r.required_scheduled) for r in rows] == [(0, 0), (14, 20), (0, 0), (0, 0), (0, 0)]
    # 10:00 is averaged over its observed quarter hour (1 agent, not 0.5); 10:30 is not begun.
    assert [r.staffed for r in rows] == [0.0, 15.0, 3.0, 1.0, None]
    assert [r.gap for r in rows] == [0.0, 1.0, 3.0, 1.0, None]


def test_schedule_view_gap_is_negative_when_short_and_carries_plan_errors():
    nine = at(UTC, UNTIL_DAY, 9)
    slots = [fslot(None if (weekday, minute) == (MON, 10 * 60) else 100.0 if (weekday, minute) == (MON, 9 * 60)
                   else 0.0, 180.0, weekday, minute, 60)
             for weekday, minute in week_slots(60)]
    plan = staffing_plan(slots, interval_minutes=60)
    spans = [StateSpan(str(i), "available", nine, nine + 7200) for i in range(5)]
    rows = schedule_view(plan, spans, tz=UTC, interval_minutes=60, start=nine, end=nine + 7200, until=nine + 7200)
    assert [(r.staffed, r.required_on_phones, r.gap, r.error) for r in rows] == [
        (5.0, 8, -3.0, None), (5.0, None, None, NO_HISTORY)]


def test_schedule_view_over_a_fall_back_day_in_paris():
    # Paris repeats 02:00-03:00 on Sunday 29 October 2023: 25 hourly rows, both 02:00 rows in
    # the Sunday 02:00 slot of the week.
    plan = week_plan(60, (SUN, 120), 100.0, 360.0)
    required = slot_of(plan, SUN, 120).required_on_phones
    start, end = at(PARIS, date(2023, 10, 29)), at(PARIS, date(2023, 10, 30))
    rows = schedule_view(plan, [], tz=PARIS, interval_minutes=60, start=start, end=end, until=end)
    assert len(rows) == 25
    assert end - start == 25 * 3600
    two = [r for r in rows if r.minute == 120]
    assert [r.label for r in two] == ["2023-10-29T02:00:00+02:00", "2023-10-29T02:00:00+01:00"]
    assert {(r.weekday, r.required_on_phones, r.staffed, r.gap) for r in two} == {
        (SUN, required, 0.0, -float(required))}
    assert all(b.start == a.end for a, b in zip(rows, rows[1:]))


def test_schedule_view_refuses_a_plan_for_other_intervals():
    nine = at(UTC, UNTIL_DAY, 9)
    with pytest.raises(ForecastError):
        schedule_view(week_plan(60, (MON, 540), 10.0, 180.0), [], tz=UTC, interval_minutes=30,
                      start=nine, end=nine + 3600, until=nine)
    partial = [p for p in week_plan(30, (MON, 540), 10.0, 180.0) if p.weekday != MON]
    with pytest.raises(ForecastError):
        schedule_view(partial, [], tz=UTC, interval_minutes=30, start=nine, end=nine + 3600, until=nine)
