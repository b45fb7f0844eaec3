"""The recordings' pure parts: retention maths (per-queue days, None keeps forever), the settings'
validation, PCI-pause spans and the time parameters of searches."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from callcenter.recording.model import (
    DAY,
    Recording,
    RecordingPermissions,
    RecordingsSettings,
    RetentionPolicy,
    due_for_purge,
    normalize_pci_spans,
    parse_when,
)
from callcenter.web.auth import Role

NOW = 1_750_000_000.0


def recording(recording_id: str, queue: str | None, age_days: float) -> Recording:
    started = NOW - age_days * DAY
    return Recording(id=recording_id, call_id=recording_id, agent_id="1001", queue=queue, customer=None,
                     customer_name=None, direction="inbound", started_at=started, ended_at=started + 60,
                     duration=60.0, file=f"{recording_id}.wav", size_bytes=960_044, indexed_at=started + 61)


def test_retention_uses_the_queues_own_days_else_the_default_and_none_keeps_forever():
    policy = RetentionPolicy(default_days=90, queues={"sales": 30, "legal": None, "vip": 365})
    rows = [recording("s-31", "sales", 31), recording("s-29", "sales", 29),
            recording("l-5000", "legal", 5000),
            recording("v-366", "vip", 366), recording("v-200", "vip", 200),
            recording("o-91", "support", 91), recording("o-89", "support", 89),
            recording("n-91", None, 91)]
    assert [r.id for r in due_for_purge(rows, policy, NOW)] == ["s-31", "v-366", "o-91", "n-91"]
    assert policy.days_for("sales") == 30 and policy.days_for("legal") is None and policy.days_for("x") == 90
    assert due_for_purge(rows, RetentionPolicy(default_days=None), NOW) == []


def test_a_recording_exactly_at_its_cutoff_is_kept():
    policy = RetentionPolicy(default_days=10)
    assert due_for_purge([recording("edge", "q", 10)], policy, NOW) == []
    assert len(due_for_purge([recording("past", "q", 10.0001)], policy, NOW)) == 1


def test_the_latest_cutoff_is_the_shortest_retention_and_none_when_all_keep_forever():
    assert RetentionPolicy(default_days=90, queues={"sales": 30, "legal": None}).latest_cutoff(NOW) == NOW - 30 * DAY
    assert RetentionPolicy(default_days=None, queues={"sales": 400}).latest_cutoff(NOW) == NOW - 400 * DAY
    assert RetentionPolicy(default_days=None, queues={"legal": None}).latest_cutoff(NOW) is None


@pytest.mark.parametrize("data, message", [
    ({"default_days": 0}, "greater than or equal to 1"),
    ({"queues": {"sales": -3}}, "greater than or equal to 1"),
    ({"default_day": 30}, "Extra inputs are not permitted"),
])
def test_retention_days_are_whole_days_of_at_least_one(data, message):
    with pytest.raises(ValidationError, match=message):
        RetentionPolicy.model_validate(data)


def test_settings_section_defaults_and_parsing():
    defaults = RecordingsSettings()
    assert defaults.retention.default_days == 90 and defaults.retention.queues == {}
    assert defaults.permissions.playback == (Role.SUPERVISOR, Role.QA, Role.ADMIN)
    assert defaults.permissions.export == (Role.ADMIN,)
    parsed = RecordingsSettings.model_validate({
        "retention": {"default_days": 180, "queues": {"sales": 30, "legal": None}},
        "permissions": {"playback": ["qa", "admin"], "export": ["supervisor", "admin"]},
    })
    assert parsed.retention.days_for("legal") is None and parsed.retention.days_for("sales") == 30
    assert parsed.permissions.playback == (Role.QA, Role.ADMIN)
    with pytest.raises(ValidationError):
        parsed.retention.default_days = 1  # frozen, like the engine's settings
    with pytest.raises(ValidationError, match="Extra inputs"):
        RecordingsSettings.model_validate({"retention": {}, "keep": 3})


@pytest.mark.parametrize("roles, message", [
    (["agent"], "'agent' is not a staff role"),
    (["public"], "'public' is not a staff role"),
    (["boss"], "Input should be"),
    (["qa", "qa"], "listed more than once"),
])
def test_only_staff_roles_may_be_given_playback_or_export(roles, message):
    for permission in ("playback", "export"):
        with pytest.raises(ValidationError, match=message):
            RecordingPermissions.model_validate({permission: roles})


def test_pci_spans_are_sorted_merged_and_clipped_to_the_audio():
    spans = [(50, 70), (10, 20), (15, 30), (-5, 2), (95, None), (200, 210)]
    assert normalize_pci_spans(spans, duration=100.0) == ((0.0, 2), (10, 30), (50, 70), (95, 100.0))
    assert normalize_pci_spans([], duration=10.0) == ()
    with pytest.raises(ValueError, match="start <= end"):
        normalize_pci_spans([(30, 20)], duration=100.0)
    with pytest.raises(ValueError, match=r"is \(start, end\)"):
        normalize_pci_spans([(1, 2, 3)], duration=100.0)


def test_times_are_epoch_seconds_dates_or_date_times():
    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_when("1709280000") == 1709280000.0
    assert parse_when(" 1709280000.5 ") == 1709280000.5
    assert parse_when("2024-03-01") == datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()
    assert parse_when("2024-03-01", shanghai) == datetime(2024, 3, 1, tzinfo=shanghai).timestamp()
    assert parse_when("2024-03-01T08:30", shanghai) == datetime(2024, 3, 1, 8, 30, tzinfo=shanghai).timestamp()
    with_offset = datetime(2024, 3, 1, 7, 30, tzinfo=timezone.utc).timestamp()
    assert parse_when("2024-03-01T08:30+01:00", shanghai) == with_offset


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "nan", "inf", "-5", ""])
def test_a_time_that_is_not_one_is_refused_naming_the_field(text):
    with pytest.raises(ValueError, match=r"^from: .* is not "):
        parse_when(text, name="from")
