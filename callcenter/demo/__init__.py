"""The one-command demo: SIPp agent phones answer (one never does), three SIPp callers dial in and
press keys (or nothing), and the event log is read back to tell a newcomer what happened to each call."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable
from pathlib import Path

from callcenter.config import Settings
from callcenter.events.log import read_events
from callcenter.sipp import agent_phone, caller_in_slot, caller_scenario

# (agent, phone behaviour, skills). 1003 logs in first, so it is the longest idle support agent and
# is offered the first support call — which it never answers, to show ring-no-answer at work.
DEMO_AGENTS = [("1003", "never_answer", ["support"]),
               ("1001", "answer_then_hangup", ["support"]),
               ("1002", "answer_then_hangup", ["sales"])]
# A few customers for the service line (DID 5001): account 12345678 is a Chinese-speaking VIP.
DEMO_CUSTOMERS = Path(__file__).with_name("customers.csv")
# (caller number, keys pressed, what it shows)
DEMO_CALLERS = [("13800000001", "2", "presses 2 (support)"),
                ("13800000002", "1", "presses 1 (sales)"),
                ("13800000003", "", "presses nothing (menu retries, then the default)")]


async def run_demo(settings: Settings, engine, echo: Callable[[str], None] = print) -> int:
    phones = []
    try:
        for agent_id, mode, queues in DEMO_AGENTS:
            phone = agent_phone(agent_id, settings.agents[agent_id], mode=mode, ring_delay_ms=800, talk_ms=4000)
            await asyncio.to_thread(phone.start)
            phones.append(phone)
            engine.control_agent("login", agent_id, queues=queues)
            echo(f"agent {agent_id}: phone up at {phone.contact} ({mode}), logged in to {', '.join(queues)}")
            await asyncio.sleep(0.05)  # distinct idle times, so the order above is the routing order

        echo(f"placing 3 calls to 5000 (an unanswered phone rings for {settings.ring_timeout:.0f} s) ...")
        started = time.time()
        # callers stay on until the agent hangs up (after talking 4 s)
        callers = [caller_in_slot(i, caller_scenario(keys, caller_number=number, hold_ms=None),
                                  name=f"demo-caller-{i}")
                   for i, (number, keys, _) in enumerate(DEMO_CALLERS)]
        results = await asyncio.gather(*(c.run(timeout=90) for c in callers))
        await asyncio.sleep(settings.wrapup_seconds + 0.5)
        await engine.events.flush()
    finally:
        for phone in phones:
            await asyncio.to_thread(phone.stop)

    events = await asyncio.to_thread(read_events, engine.db, limit=100_000)
    events = [e for e in events if e["ts"] >= started - 1]
    ok = True
    echo("")
    for (number, _keys, what), result in zip(DEMO_CALLERS, results):
        story, answered = describe_call(number, events, engine.recordings_dir)
        ok = ok and result.ok and answered
        echo(f"caller {number} {what}:\n  " + ("\n  ".join(story) if story else "(no events)"))
        if not result.ok:
            echo(f"  SIPp caller failed: {result.describe()}")
    echo("")
    for agent in engine.router.agents_snapshot(time.time()):
        echo(f"agent {agent['agent_id']}: {agent['state']}{' (' + agent['reason'] + ')' if agent['reason'] else ''},"
             f" {agent['calls_answered']} call(s) answered")
    echo("\ndemo " + ("OK: every caller reached an agent" if ok else "FAILED"))
    return 0 if ok else 1


def describe_call(caller_number: str, events: list[dict], recordings_dir) -> tuple[list[str], bool]:
    """One line per step of the call from ``caller_number``, from the event log alone."""
    arrived = next((e for e in events if e["kind"] == "call_arrived" and e["data"].get("caller") == caller_number), None)
    if arrived is None:
        return [], False
    call_id = arrived["call_id"]
    lines, answered = [f"call {call_id} arrived"], False
    for e in (e for e in events if e["call_id"] == call_id):
        kind, data, t = e["kind"], e["data"], e["ts"] - arrived["ts"]
        text = {
            "ivr_menu_choice": f"IVR: pressed {data.get('key')} -> {data.get('target')}",
            "ivr_menu_invalid": f"IVR: invalid key {data.get('key')}, menu repeated",
            "ivr_menu_timeout": "IVR: no key, menu repeated",
            "ivr_menu_default": f"IVR: retries used up -> default {data.get('target')}",
            "queued": f"queued in {e['queue']}, hearing music on hold",
            "offered": f"ringing agent {e['agent_id']}",
            "ring_no_answer": f"agent {e['agent_id']} did not answer: paused, call offered to the next agent",
            "answered": f"agent {e['agent_id']} answered after {data.get('wait', 0):.1f} s in queue",
            "ended": f"call ended after {data.get('talk', 0):.1f} s of talk",
            "wrapup_done": f"agent {e['agent_id']} finished wrap-up",
            "fallback": "engine unreachable: sent to the fallback queue",
        }.get(kind)
        if text:
            lines.append(f"{t:5.1f} s  {text}")
        answered = answered or kind == "answered"
    recording = recordings_dir / f"{call_id}.wav"
    if recording.exists():
        with wave.open(str(recording)) as wav:
            lines.append(f"recording {recording} ({wav.getnframes() / wav.getframerate():.1f} s)")
    return lines, answered


def seed_demo_customers(store) -> str | None:
    """Put the demo customers into an empty CRM (never into one that has customers); what was done."""
    from callcenter.crm.importer import import_customers_csv

    if store.customer_count():
        return None
    report = import_customers_csv(store, DEMO_CUSTOMERS)
    return report.summary()


def demo_password(agent_id: str) -> str:
    return f"demo-{agent_id}"


def seed_demo_passwords(credentials, agent_ids) -> list[str]:
    """Give agents that have no desktop password yet the demo one (``demo-<id>``); which were set.
    Only ``callcenter up`` does this: a real site sets passwords with ``callcenter agent password``."""
    seeded = [a for a in agent_ids if not credentials.has_password(a)]
    for agent_id in seeded:
        credentials.set_password(agent_id, demo_password(agent_id))
    return seeded


DEMO_STAFF = (("supervisor", "supervisor"), ("analyst", "qa"), ("admin", "admin"))


def seed_demo_staff(users) -> list[str]:
    """On a database without staff users, add the demo's (``supervisor``, ``analyst`` (QA),
    ``admin``, each with the password ``demo-<name>``); which were added. Only ``callcenter up``
    does this."""
    if users.list():
        return []
    for username, role in DEMO_STAFF:
        users.add(username, role, demo_password(username))
    return [username for username, _ in DEMO_STAFF]
