"""The agent and queue commands of the `callcenter` CLI, against a running engine."""

from __future__ import annotations

import json
import subprocess
import sys


def cli(engine, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callcenter", "--config", str(engine.config_path), *args],
                          capture_output=True, text=True, timeout=20)


def agent_state(engine, agent_id: str) -> dict:
    out = cli(engine, "agents")
    assert out.returncode == 0, out.stderr
    return next(a for a in json.loads(out.stdout) if a["agent_id"] == agent_id)


def test_agent_commands_change_state_through_the_api(engine):
    assert cli(engine, "agent", "login", "1008", "--queues", "support, sales").returncode == 0
    assert agent_state(engine, "1008")["queues"] == ["sales", "support"]
    assert agent_state(engine, "1008")["skills"] == {"billing": 8, "lang.en": 5}  # from routing.yaml
    assert agent_state(engine, "1008")["state"] == "available"

    assert cli(engine, "agent", "pause", "1008", "--reason", "lunch").returncode == 0
    state = agent_state(engine, "1008")
    assert (state["state"], state["reason"]) == ("paused", "lunch")

    assert cli(engine, "agent", "unpause", "1008").returncode == 0
    assert agent_state(engine, "1008")["state"] == "available"
    queues = json.loads(cli(engine, "queues").stdout)
    assert {q["queue"]: q["agents_available"] for q in queues} == {"sales": 1, "support": 1, "billing": 0}

    assert cli(engine, "agent", "logout", "1008").returncode == 0
    assert agent_state(engine, "1008")["state"] == "logged_out"
    states = [e["data"]["state"] for e in engine.events() if e["kind"] == "agent_state" and e["agent_id"] == "1008"]
    assert states == ["available", "paused", "available", "logged_out"]


def test_agent_commands_report_refusals_clearly(engine):
    unknown = cli(engine, "agent", "login", "4242", "--queues", "support")
    assert unknown.returncode == 1 and "404 no agent 4242" in unknown.stderr
    bad_queue = cli(engine, "agent", "login", "1009", "--queues", "nosuch")
    assert bad_queue.returncode == 1 and "409" in bad_queue.stderr and "nosuch" in bad_queue.stderr
    not_paused = cli(engine, "agent", "unpause", "1009")
    assert not_paused.returncode == 1 and "409" in not_paused.stderr


def test_api_refuses_cross_site_posts_and_foreign_host_names(engine):
    import urllib.error

    import pytest

    with pytest.raises(urllib.error.HTTPError) as form_post:
        engine.api("POST", "/api/agents/1010/login", {"queues": ["support"]},
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert form_post.value.code == 415
    with pytest.raises(urllib.error.HTTPError) as rebinding:
        engine.api("GET", "/api/agents", headers={"host": "evil.example:18081"})
    assert rebinding.value.code == 403
    assert all(a["agent_id"] != "1010" for a in engine.api("GET", "/api/agents")), "nothing was done"
