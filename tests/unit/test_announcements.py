"""Announcements to waiting callers: the schedule and the text the dialplan says."""

from __future__ import annotations

import pytest

from callcenter.acd.announcements import AnnouncementPlan, AnnouncementSchedule, announcement

BOTH = AnnouncementPlan(position=True, estimated_wait=True, every=60, first_after=0)


@pytest.mark.parametrize("position, wait, text", [
    (3, 125.0, "3-3"),      # minutes rounded up
    (1, 59.9, "1-0"),       # under a minute: "less than one minute"
    (1, 60.0, "1-1"),
    (2, None, "2-x"),       # no estimate (nobody staffs the queue): never said as a number
    (None, 30.0, "x-0"),
    (None, None, None),     # nothing to say at all
    (2, 10 ** 9, "2-999"),  # capped
])
def test_announcement_text(position, wait, text):
    assert announcement(BOTH, position, wait) == text


def test_announcement_says_only_what_the_plan_asks_for():
    position_only = AnnouncementPlan(position=True, estimated_wait=False, every=60, first_after=0)
    wait_only = AnnouncementPlan(position=False, estimated_wait=True, every=60, first_after=0)
    assert announcement(position_only, 4, 300) == "4-x"
    assert announcement(wait_only, 4, 300) == "x-5"
    assert announcement(wait_only, 4, None) is None


def test_schedule_fires_first_after_then_every_period_from_the_last_announcement():
    schedule = AnnouncementSchedule()
    plan = AnnouncementPlan(position=True, estimated_wait=True, every=30, first_after=10)
    schedule.add("c1", plan, waiting_since=100)
    schedule.add("c2", plan, waiting_since=105)
    assert schedule.due(109.9) == []
    assert schedule.due(110) == [("c1", plan)]
    assert schedule.due(116) == [("c2", plan)]  # a late tick: c2 was due at 115
    assert schedule.due(140) == [("c1", plan)]
    assert schedule.due(145.5) == []  # c2 next at 116 + 30: counted from when it was said
    assert schedule.due(146) == [("c2", plan)]


def test_a_removed_caller_is_never_announced_and_a_re_added_one_keeps_only_its_new_time():
    schedule = AnnouncementSchedule()
    schedule.add("c1", BOTH, waiting_since=0)
    schedule.remove("c1")
    assert schedule.due(1000) == [] and len(schedule) == 0
    schedule.add("c2", BOTH, waiting_since=0)
    schedule.add("c2", BOTH, waiting_since=50)
    assert schedule.due(49) == []
    assert schedule.due(50) == [("c2", BOTH)]


def test_a_plan_needs_positive_timing():
    with pytest.raises(ValueError, match="positive"):
        AnnouncementPlan(position=True, estimated_wait=True, every=0, first_after=0)
