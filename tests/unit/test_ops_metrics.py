"""The /metrics exposition: parsed back with prometheus_client's own parser, from a fake source
shaped like the router's snapshots."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from callcenter.acd.router import Router
from callcenter.ops.metrics import AGENT_STATES, MetricsSource, render


def queue(name, waiting=(), ringing=()):
    """A queue as Router.queues_snapshot lists it; waiting/ringing: the calls' waits in seconds."""
    return {
        "queue": name, "strategy": "longest_idle",
        "waiting": [{"call_id": f"{name}-w{i}", "priority": 0, "wait": w, "requirement": "any"}
                    for i, w in enumerate(waiting)],
        "ringing": [{"call_id": f"{name}-r{i}", "priority": 0, "wait": w, "agent_id": "1001"}
                    for i, w in enumerate(ringing)],
        "agents_available": 0, "agents_staffed": 0, "agents_logged_in": 0,
        "estimated_wait": None, "service_level": None,
        "service_level_target": 0.8, "service_level_seconds": 20,
    }


def agent(agent_id, state, queues):
    """An agent as Router.agents_snapshot lists it (only the fields metrics read matter)."""
    return {"agent_id": agent_id, "state": state, "queues": sorted(queues), "since": 0.0,
            "seconds_in_state": 1.0, "reason": None, "skills": {}, "call_id": None}


def fake_source(**overrides) -> MetricsSource:
    source = MetricsSource(
        queues=lambda: [queue("sales", waiting=[12.5, 3.0], ringing=[40.0]), queue("support")],
        agents=lambda: [agent("1001", "available", ["sales", "support"]),
                        agent("1002", "on_call", ["sales"]),
                        agent("1003", "available", ["sales"])],
        counters=lambda: {"offers": 17, "rona": 2, "answered": 14, "abandoned": 3},
        ami_connected=lambda: True,
        agi=lambda: {"listening": True, "connections": 21, "rejected": 1},
        event_lag_seconds=lambda: 0.25,
        db_ok=lambda: True,
    )
    return replace(source, **overrides)


def scrape(source: MetricsSource) -> dict:
    """{family name: {(sample name, frozenset(labels)): value}}, and the HELP/TYPE per family."""
    body, content_type = render(source)
    assert content_type == CONTENT_TYPE_LATEST
    families = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.documentation, f"{family.name} has no HELP"
        families[family.name] = family
    return families


def value(families, family_name, sample_name=None, **labels):
    family = families[family_name]
    matches = [s.value for s in family.samples
               if s.name == (sample_name or family_name) and s.labels == labels]
    assert len(matches) == 1, f"{family_name}{labels}: {family.samples}"
    return matches[0]


def test_every_family_is_prefixed_and_has_help():
    families = scrape(fake_source())
    assert families and all(name.startswith("callcenter_") for name in families)


def test_queue_gauges():
    families = scrape(fake_source())
    assert value(families, "callcenter_calls_waiting", queue="sales") == 2
    assert value(families, "callcenter_calls_ringing", queue="sales") == 1
    # the ringing call has waited longest: it is still unanswered
    assert value(families, "callcenter_longest_wait_seconds", queue="sales") == 40.0


def test_queue_without_callers_reports_zero():
    families = scrape(fake_source())
    assert value(families, "callcenter_calls_waiting", queue="support") == 0
    assert value(families, "callcenter_calls_ringing", queue="support") == 0
    assert value(families, "callcenter_longest_wait_seconds", queue="support") == 0


def test_agents_by_state_include_empty_states():
    families = scrape(fake_source())
    assert value(families, "callcenter_agents", state="available") == 2
    assert value(families, "callcenter_agents", state="on_call") == 1
    assert value(families, "callcenter_agents", state="paused") == 0
    assert {s.labels["state"] for s in families["callcenter_agents"].samples} == set(AGENT_STATES)


def test_agents_in_a_state_the_model_does_not_know_are_still_counted():
    families = scrape(fake_source(agents=lambda: [agent("1001", "training", ["sales"])]))
    assert value(families, "callcenter_agents", state="training") == 1
    assert value(families, "callcenter_queue_agents", queue="sales", state="training") == 1


def test_agents_by_queue_and_state():
    families = scrape(fake_source())
    assert value(families, "callcenter_queue_agents", queue="sales", state="available") == 2
    assert value(families, "callcenter_queue_agents", queue="sales", state="on_call") == 1
    assert value(families, "callcenter_queue_agents", queue="support", state="available") == 1
    assert value(families, "callcenter_queue_agents", queue="support", state="on_call") == 0


def test_configured_queue_nobody_serves_reports_zero_agents():
    families = scrape(fake_source(queues=lambda: [queue("sales"), queue("night")]))
    assert value(families, "callcenter_queue_agents", queue="night", state="available") == 0


@pytest.mark.parametrize("key, expected", [("offers", 17), ("rona", 2), ("answered", 14), ("abandoned", 3)])
def test_call_counters(key, expected):
    families = scrape(fake_source())
    family_name = f"callcenter_{key}"
    assert families[family_name].type == "counter"
    assert value(families, family_name, f"{family_name}_total") == expected


def test_counter_the_engine_does_not_keep_is_left_out_not_zero():
    families = scrape(fake_source(counters=lambda: {"offers": 5}))
    assert "callcenter_offers" in families
    assert "callcenter_rona" not in families


def test_connections_up():
    families = scrape(fake_source())
    assert value(families, "callcenter_ami_up") == 1
    assert value(families, "callcenter_agi_up") == 1
    assert value(families, "callcenter_agi_connections", "callcenter_agi_connections_total") == 21
    assert value(families, "callcenter_agi_rejected", "callcenter_agi_rejected_total") == 1
    assert families["callcenter_agi_rejected"].type == "counter"
    assert value(families, "callcenter_event_lag_seconds") == 0.25
    assert value(families, "callcenter_database_up") == 1


def test_connections_down():
    families = scrape(fake_source(ami_connected=lambda: False, agi=lambda: {"listening": False},
                                  db_ok=lambda: False))
    assert value(families, "callcenter_ami_up") == 0
    assert value(families, "callcenter_agi_up") == 0
    assert value(families, "callcenter_database_up") == 0
    # FastAGI counts not supplied: left out
    assert "callcenter_agi_connections" not in families


def test_database_state_unknown_is_left_out():
    families = scrape(fake_source(db_ok=lambda: None))
    assert "callcenter_database_up" not in families


def test_label_values_are_escaped():
    awkward = 'say "hi" \\ back\nnow'
    body, _ = render(fake_source(queues=lambda: [queue(awkward, waiting=[1.0])], agents=lambda: []))
    text = body.decode()
    assert 'queue="say \\"hi\\" \\\\ back\\nnow"' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert value(families, "callcenter_calls_waiting", queue=awkward) == 1


def test_every_scrape_reads_the_source_again():
    lag = iter([1.5, 0.0])
    source = fake_source(event_lag_seconds=lambda: next(lag))
    assert value(scrape(source), "callcenter_event_lag_seconds") == 1.5
    assert value(scrape(source), "callcenter_event_lag_seconds") == 0.0


def test_real_router_snapshots():
    """The collector reads the router's own snapshot shape, not just this file's imitation of it."""
    router = Router(["sales", "support"], ring_timeout=15, wrapup_seconds=5)
    router.login("1001", ["sales"], now=0)
    router.enqueue("c1", "sales", now=10)  # offered to 1001 at once: ringing
    router.enqueue("c2", "sales", now=20)  # nobody left: waiting
    families = scrape(fake_source(queues=lambda: router.queues_snapshot(50), agents=lambda: router.agents_snapshot(50)))
    assert value(families, "callcenter_calls_waiting", queue="sales") == 1
    assert value(families, "callcenter_calls_ringing", queue="sales") == 1
    assert value(families, "callcenter_longest_wait_seconds", queue="sales") == 40
    assert value(families, "callcenter_longest_wait_seconds", queue="support") == 0
    assert value(families, "callcenter_agents", state="reserved") == 1
    assert value(families, "callcenter_queue_agents", queue="sales", state="reserved") == 1
    assert value(families, "callcenter_queue_agents", queue="support", state="reserved") == 0
