"""The wallboard's figures and colour levels (callcenter.supervisor.wallboard), computed from a real
ACD router's snapshots and a real RealtimeKpis fed with the router's own events: waiting counts
ringing callers too, today's service level against each queue's own target, agents coloured by
how long they have been in wrap-up / paused / on a call, logged-out agents left out, AHT today."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from callcenter.acd.model import Event, QueueConfig
from callcenter.acd.router import Router
from callcenter.kpi.realtime import RealtimeKpis
from callcenter.supervisor.wallboard import WallboardSettings, build_board, level, sl_level

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC).timestamp()
NOW = T0 + 400


# ---------------------------------------------------------------------------- levels
@pytest.mark.parametrize("value, expected", [
    (None, "ok"), (0, "ok"), (9.99, "ok"), (10, "warn"), (19.99, "warn"), (20, "alert"), (1e6, "alert"),
])
def test_level_higher_is_worse(value, expected):
    assert level(value, 10, 20) == expected


def test_level_with_warn_equal_to_alert_skips_amber():
    assert (level(4, 5, 5), level(5, 5, 5)) == ("ok", "alert")


@pytest.mark.parametrize("value, expected", [
    (None, "ok"),  # no call yet today is not a problem
    (1.0, "ok"), (0.75, "ok"),  # at target + margin: fine
    (0.7499, "warn"), (0.5, "warn"),  # just above the target, or exactly on it: amber
    (0.4999, "alert"), (0.0, "alert"),  # below the target: red
])
def test_sl_level_lower_is_worse(value, expected):
    assert sl_level(value, 0.5, 0.25) == expected


def test_sl_level_with_no_margin_is_red_or_fine():
    assert (sl_level(0.8, 0.8, 0), sl_level(0.79, 0.8, 0)) == ("ok", "alert")


# ---------------------------------------------------------------------------- settings
def test_settings_defaults_are_valid_and_frozen():
    settings = WallboardSettings()
    assert (settings.waiting_warn, settings.waiting_alert, settings.push_seconds) == (3, 10, 1.0)
    with pytest.raises(ValidationError):
        settings.waiting_warn = 5


@pytest.mark.parametrize("name", ["waiting", "longest_wait", "wrapup", "paused", "call"])
def test_settings_refuse_an_alert_below_its_warn(name):
    warn = WallboardSettings().model_dump()[f"{name}_warn"]
    with pytest.raises(ValidationError, match=f"{name}_alert must not be below {name}_warn"):
        WallboardSettings(**{f"{name}_warn": warn, f"{name}_alert": warn - 1})
    equal = WallboardSettings(**{f"{name}_warn": warn, f"{name}_alert": warn})  # equal is allowed
    assert getattr(equal, f"{name}_alert") == warn


def test_settings_refuse_unknown_keys_and_out_of_range_values():
    with pytest.raises(ValidationError, match="extra"):
        WallboardSettings(waiting_amber=3)
    for bad in ({"push_seconds": 0}, {"push_seconds": 61}, {"waiting_warn": 0}, {"wrapup_warn": 0},
                {"sl_warn_margin": -0.1}, {"sl_warn_margin": 1.5}):
        with pytest.raises(ValidationError):
            WallboardSettings(**bad)


# ---------------------------------------------------------------------------- a floor, from a real router
SETTINGS = WallboardSettings(
    waiting_warn=2, waiting_alert=5,
    longest_wait_warn=100, longest_wait_alert=195,
    sl_warn_margin=0.05,
    wrapup_warn=60, wrapup_alert=180,  # 1002 in wrap-up for 250 s: red
    paused_warn=200, paused_alert=1000,  # 1003 paused for 260 s: amber
    call_warn=100, call_alert=300,  # 1001 on a call for 385 s: red
)


class Floor:
    """support (SL 50 % in 20 s), sales (SL 80 % in 20 s), vip (no calls), driven through a story.

    At NOW (T0 + 400):
    - 1001 on c1 since +15 (answered after 5 s);
    - 1002 in wrap-up since +150 after c2 (answered after 25 s, talk 105 s), never released;
    - 1003 took s1 (answered after 2 s, talk 68 s, wrap-up 30 s), paused for lunch since +140;
    - 1004 logged in and out again;
    - 1005 logged in at +220 and is ringing for c3 (queued +200); c4 (queued +210) waits;
    - s2 abandoned in sales after 10 s.
    """

    def __init__(self) -> None:
        self.router = Router([QueueConfig("support", service_level_target=0.5, service_level_seconds=20),
                              QueueConfig("sales", service_level_target=0.8, service_level_seconds=20),
                              QueueConfig("vip")],
                             ring_timeout=15, wrapup_seconds=30)
        self.kpis = RealtimeKpis(tz="UTC")
        r = self.router
        story = [
            (0, lambda t: r.login("1001", ["support"], t)),
            (0, lambda t: r.login("1002", ["support"], t)),
            (0, lambda t: r.login("1003", ["sales"], t)),
            (0, lambda t: r.login("1004", ["sales"], t)),
            (10, lambda t: r.enqueue("c1", "support", t)),
            (15, lambda t: r.offer_answered("c1/1", t)),
            (20, lambda t: r.enqueue("c2", "support", t)),
            (30, lambda t: r.enqueue("s1", "sales", t)),
            (32, lambda t: r.offer_answered("s1/1", t)),
            (45, lambda t: r.offer_answered("c2/1", t)),
            (100, lambda t: r.call_ended("s1", t)),
            (130, lambda t: r.wrapup_done("1003", t)),
            (140, lambda t: r.pause("1003", "lunch", t)),
            (150, lambda t: r.call_ended("c2", t)),
            (160, lambda t: r.logout("1004", t)),
            (200, lambda t: r.enqueue("c3", "support", t)),
            (210, lambda t: r.enqueue("c4", "support", t)),
            (220, lambda t: r.login("1005", ["support"], t)),
            (230, lambda t: r.enqueue("s2", "sales", t)),
            (240, lambda t: r.abandon("s2", t)),
        ]
        self.rows: list[dict] = []
        for offset, step in story:
            for effect in step(T0 + offset):
                if isinstance(effect, Event):
                    row = {"id": len(self.rows) + 1, "ts": T0 + offset, "kind": effect.kind,
                           "call_id": effect.call_id, "queue": effect.queue, "agent_id": effect.agent_id,
                           "data": effect.data}
                    self.rows.append(row)
                    self.kpis.apply(row)

    def board(self, settings: WallboardSettings = SETTINGS, **kwargs) -> dict:
        return build_board(self.router.queues_snapshot(NOW), self.router.agents_snapshot(NOW),
                           self.kpis.snapshot(NOW), settings, now=NOW, **kwargs)


@pytest.fixture
def floor() -> Floor:
    return Floor()


def test_the_story_leaves_the_floor_as_described(floor):
    states = {a["agent_id"]: a["state"] for a in floor.router.agents_snapshot(NOW)}
    assert states == {"1001": "on_call", "1002": "wrap_up", "1003": "paused", "1004": "logged_out",
                      "1005": "reserved"}
    support = floor.router.queues_snapshot(NOW)[0]
    assert [c["call_id"] for c in support["waiting"]] == ["c4"]
    assert [c["call_id"] for c in support["ringing"]] == ["c3"]


def test_queues_count_ringing_callers_as_waiting_and_take_the_longest_wait(floor):
    board = floor.board()
    assert [q["queue"] for q in board["queues"]] == ["support", "sales", "vip"]  # configuration order
    support, sales, vip = board["queues"]
    assert support["waiting"] == 2  # c4 waiting, c3 ringing 1005: both callers still wait
    assert support["longest_wait"] == 200.0  # c3, queued at +200, is ringing
    assert support["calls"] == [
        {"call_id": "c4", "wait": 190.0, "priority": 0, "state": "waiting"},
        {"call_id": "c3", "wait": 200.0, "priority": 0, "state": "ringing"},
    ]
    assert support["levels"]["waiting"] == "warn"  # 2 >= waiting_warn
    assert support["levels"]["longest_wait"] == "alert"  # 200 >= 195
    assert (support["agents_available"], support["agents_logged_in"]) == (0, 3)
    assert support["estimated_wait"] == floor.router.queues_snapshot(NOW)[0]["estimated_wait"]
    assert (sales["waiting"], sales["longest_wait"], sales["calls"]) == (0, None, [])
    assert (sales["levels"]["waiting"], sales["levels"]["longest_wait"]) == ("ok", "ok")
    assert (sales["agents_available"], sales["agents_logged_in"]) == (0, 1)  # 1003 paused; 1004 out
    assert (vip["waiting"], vip["agents_logged_in"]) == (0, 0)


def test_todays_service_level_is_judged_against_each_queues_own_target(floor):
    support, sales, vip = floor.board()["queues"]
    # support: c1 within 20 s, c2 after 25 s -> 1/2, on its 50 % target (amber: within the margin)
    assert (support["offered_today"], support["answered_today"], support["abandoned_today"]) == (2, 2, 0)
    assert (support["sl_today"], support["sl_target"], support["sl_seconds"]) == (0.5, 0.5, 20)
    assert support["levels"]["sl"] == "warn"
    # sales: s1 within, s2 abandoned -> 1/2, below its 80 % target: red
    assert (sales["offered_today"], sales["answered_today"], sales["abandoned_today"]) == (2, 1, 1)
    assert (sales["sl_today"], sales["sl_target"]) == (0.5, 0.8)
    assert sales["levels"]["sl"] == "alert"
    # vip: no call today at all, so no figure and nothing to worry about
    assert (vip["sl_today"], vip["offered_today"], vip["answered_today"], vip["levels"]["sl"]) == (None, 0, 0, "ok")


def test_a_queue_at_target_plus_margin_is_green(floor):
    support = floor.board(SETTINGS.model_copy(update={"sl_warn_margin": 0.0}))["queues"][0]
    assert support["levels"]["sl"] == "ok"


def test_agents_are_coloured_by_how_long_they_have_been_in_their_state(floor):
    agents = {a["agent_id"]: a for a in floor.board()["agents"]}
    assert list(agents) == ["1001", "1002", "1003", "1005"]  # 1004 logged out: left out
    assert {i: (a["state"], a["seconds_in_state"], a["level"]) for i, a in agents.items()} == {
        "1001": ("on_call", 385.0, "alert"),  # a long call
        "1002": ("wrap_up", 250.0, "alert"),  # stuck in wrap-up
        "1003": ("paused", 260.0, "warn"),  # a long pause
        "1005": ("reserved", 180.0, "ok"),  # ringing has no threshold
    }
    assert agents["1003"]["reason"] == "lunch"
    assert [agents[i]["call_seconds"] for i in agents] == [385.0, None, None, None]  # only while on a call
    assert [agents[i]["on_call"] for i in agents] == [True, True, False, False]  # wrap-up keeps its call
    assert [agents[i]["call_id"] for i in agents] == ["c1", "c2", None, "c3"]
    assert agents["1005"]["queues"] == ["support"]


def test_each_state_uses_its_own_thresholds(floor):
    relaxed = SETTINGS.model_copy(update={"call_warn": 386.0, "call_alert": 1000.0})
    agents = {a["agent_id"]: a["level"] for a in floor.board(relaxed)["agents"]}
    assert agents == {"1001": "ok", "1002": "alert", "1003": "warn", "1005": "ok"}
    relaxed = SETTINGS.model_copy(update={"wrapup_alert": 251.0, "paused_warn": 261.0})
    agents = {a["agent_id"]: a["level"] for a in floor.board(relaxed)["agents"]}
    assert agents == {"1001": "alert", "1002": "warn", "1003": "ok", "1005": "ok"}
    between = SETTINGS.model_copy(update={"call_warn": 300.0, "call_alert": 600.0})  # a long call, not yet red
    assert {a["agent_id"]: a["level"] for a in floor.board(between)["agents"]}["1001"] == "warn"


def test_aht_today_is_talk_plus_wrapup_per_call(floor):
    agents = {a["agent_id"]: a for a in floor.board()["agents"]}
    assert agents["1003"]["calls_today"] == 1
    assert agents["1003"]["aht_today"] == 68.0 + 30.0  # talk + after-call work
    assert agents["1002"]["aht_today"] == 105.0  # its wrap-up is still running: not counted yet
    assert agents["1001"]["aht_today"] == 0.0  # on its first call: nothing finished yet
    assert agents["1005"]["calls_today"] == 0 and agents["1005"]["aht_today"] is None


def test_totals_and_teams(floor):
    board = floor.board(teams={"1001": "blue", "1003": "red", "1004": "blue"})
    assert board["at"] == NOW and board["day"] == "2024-03-01"
    assert board["totals"] == {
        "waiting": 2,
        "longest_wait": 200.0,
        "answered_today": 3,
        "abandoned_today": 1,
        "agents_by_state": {"on_call": 1, "paused": 1, "reserved": 1, "wrap_up": 1},
    }
    assert {a["agent_id"]: a["team"] for a in board["agents"]} == {"1001": "blue", "1002": None,
                                                                   "1003": "red", "1005": None}
    assert all(a["team"] is None for a in floor.board()["agents"])  # no teams given


def test_the_board_is_a_pure_function_of_its_inputs(floor):
    assert floor.board() == floor.board()


# ---------------------------------------------------------------------------- hand-made snapshots
def queue_view(name: str, waiting=(), ringing=(), target: float = 0.8) -> dict:
    return {"queue": name, "strategy": "longest-idle",
            "waiting": [{"call_id": c, "priority": p, "wait": w, "requirement": "true"} for c, p, w in waiting],
            "ringing": [{"call_id": c, "priority": p, "wait": w, "agent_id": "9"} for c, p, w in ringing],
            "agents_available": 0, "agents_staffed": 0, "agents_logged_in": 0, "estimated_wait": None,
            "service_level": None, "service_level_target": target, "service_level_seconds": 20.0}


def agent_view(agent_id: str, state: str, seconds: float, **more) -> dict:
    return {"agent_id": agent_id, "state": state, "since": NOW - seconds, "seconds_in_state": seconds,
            "idle_since": None, "reason": None, "queues": ["q"], "skills": {"billing": 5}, "call_id": None,
            "calls_answered": 0, "calls_today": 0, "talk_today": 0.0, "wrapup_today": 0.0, **more}


def test_hand_made_snapshots_without_kpis_and_without_wrapup_figures():
    today = RealtimeKpis(tz="UTC").snapshot(NOW)  # nothing happened today
    queues = [queue_view("q", waiting=[("a", 3, 12.0)], ringing=[("b", 0, 40.0)]), queue_view("r"),
              queue_view("s", waiting=[("c", 0, 7.0)])]
    legacy = agent_view("7", "available", 5.0, calls_today=2, talk_today=100.0)
    del legacy["wrapup_today"]  # a snapshot from before wrap-up was counted: talk alone
    agents = [legacy, agent_view("8", "logged_out", 99999.0),
              agent_view("9", "wrap_up", 10.0)]  # in wrap-up with no call: not on a call
    board = build_board(queues, agents, today, WallboardSettings(), now=NOW)
    q, r, _ = board["queues"]
    assert (q["waiting"], q["longest_wait"], q["sl_today"], q["offered_today"]) == (2, 40.0, None, 0)
    assert q["calls"][0] == {"call_id": "a", "wait": 12.0, "priority": 3, "state": "waiting"}
    assert (r["waiting"], r["longest_wait"]) == (0, None)
    assert [a["agent_id"] for a in board["agents"]] == ["7", "9"]
    assert board["agents"][0]["aht_today"] == 50.0
    assert board["agents"][0]["skills"] == {"billing": 5}
    assert board["agents"][1]["on_call"] is False
    assert board["totals"]["longest_wait"] == 40.0  # the longest of the queues' longest waits
    assert board["totals"]["waiting"] == 3
    assert board["totals"]["agents_by_state"] == {"available": 1, "wrap_up": 1}


def test_an_empty_floor():
    board = build_board([], [], RealtimeKpis().snapshot(NOW), WallboardSettings(), now=NOW)
    assert board["totals"] == {"waiting": 0, "longest_wait": None, "answered_today": 0, "abandoned_today": 0,
                               "agents_by_state": {}}
    assert (board["queues"], board["agents"]) == ([], [])
