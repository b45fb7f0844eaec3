"""The IVR's richer nodes on the real stack, through the shipped example flows: a language choice
that Asterisk really applies, an account number typed with '#' and read back, a CRM lookup that
makes a VIP's call jump the line, position announcements played by the hold loop, a goto into the
after-hours flow, a transfer dialled out through the trunk, voicemail, and a queue node's own
max wait."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

from callcenter.config import PROJECT_DIR
from callcenter.crm.schema import migrate
from callcenter.crm.store import CrmStore
from callcenter.demo import seed_demo_customers
from callcenter.sipp import SippPhone
from callcenter.storage import make_engine
from tests.stack.conftest import new_caller

FLOWS = PROJECT_DIR / "ivr_flows"
VIP_ACCOUNT = "12345678"  # Li Wei in the demo customers: tier vip, language zh


def service_flows(directory: Path, *, hours: str = '"24x7"') -> Path:
    """The shipped flows, with the service line's hours replaced (the test must not depend on the
    time it runs at) and its announcements brought forward (the first 2 s into the wait)."""
    directory.mkdir()
    for flow in FLOWS.glob("*.yaml"):
        shutil.copy(flow, directory / flow.name)
    service = directory / "service.yaml"
    text, replaced = re.subn(r"hours: \{mon-fri: [^}]*\}", f"hours: {hours}", service.read_text())
    text, fast = re.subn(r"first_after: 10, every: 60", "first_after: 2, every: 30", text)
    assert replaced == 1 and fast == 2, "service.yaml changed: update this test's edits"
    service.write_text(text)
    return directory


def crm_database(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate(engine)
    assert seed_demo_customers(CrmStore(engine)) is not None
    engine.dispose()
    return url


def channel_language(asterisk, caller_number: str) -> str | None:
    """The language Asterisk has on the caller's channel (from `core show channel`)."""
    for line in asterisk.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if len(fields) > 7 and fields[7] == caller_number:
            detail = asterisk.cli(f"core show channel {fields[0]}")
            found = re.search(r"^\s*Language:\s*(\S+)", detail, re.MULTILINE)
            return found.group(1) if found else None
    return None


def test_a_vip_picks_chinese_types_an_account_hears_their_place_and_reaches_a_chinese_speaker(
        engine_with_routing, phones, stack_dir, asterisk):
    engine = engine_with_routing(flows_dir=service_flows(stack_dir / "flows-service"),
                                 database_url=crm_database(stack_dir / "crm-service.db"))
    english_only = phones("1001", mode="answer", ring_delay_ms=200)  # lang.en only
    engine.login("1001", "support")
    number = "13912340001"  # not in the CRM: the account number finds the customer

    async def scenario():
        # 2: Chinese; the account and '#'; 1: "yes, that is my number"
        caller = asyncio.create_task(new_caller(f"2{VIP_ACCOUNT}#1", number, dial="5001", key_gap_ms=600,
                                                hold_ms=25000).run(timeout=60))
        call_id = await asyncio.to_thread(engine.call_id_for, number)
        queued = await asyncio.to_thread(engine.wait_for_event, "queued", call_id=call_id, timeout=30)
        language = await asyncio.to_thread(channel_language, asterisk, number)
        played = await asyncio.to_thread(engine.wait_for_event, "announce_played", call_id=call_id, timeout=20)
        chinese = phones("1004", mode="answer", ring_delay_ms=200)  # lang.zh 8
        await asyncio.to_thread(engine.login, "1004", "support")
        answered = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=call_id, timeout=10)
        return call_id, queued, language, played, answered, chinese, await caller

    # The announcement takes seconds to say: more than the test Asterisk's short maximum hold.
    limit = asterisk.cli("dialplan show globals").split("CC_MAX_HOLD=", 1)[1].split()[0]
    asterisk.cli("dialplan set global CC_MAX_HOLD 120")
    try:
        call_id, queued, language, played, answered, chinese, result = asyncio.run(scenario())
    finally:
        asterisk.cli(f"dialplan set global CC_MAX_HOLD {limit}")
    assert result.ok, result.describe()
    events = engine.events(call_id)
    kinds = [e["kind"] for e in events]
    entered = next(e for e in events if e["kind"] == "ivr_input_ok")
    lookup = next(e for e in events if e["kind"] == "ivr_lookup")
    assert entered["data"] == {"node": "account", "variable": "account", "digits": 8}, "the '#' ended the entry"
    found = dict(lookup["data"])
    assert found.pop("customer_id").isdigit(), "the customer's CRM id, for repeat-contact figures"
    assert found == {"node": "by_account", "by": "account", "status": "found", "tier": "vip", "target": "route"}
    assert "ivr_language" in kinds and language == "zh", "Asterisk plays the rest of the call in Chinese"
    assert queued["data"]["priority"] == 5 and queued["data"]["requirement"] == "lang.zh >= 5"
    # the hold loop said "you are next" (1) and under a minute or no estimate, as the engine asked
    announced = next(e for e in events if e["kind"] == "announced")
    assert played["data"]["position"] == "1" == str(announced["data"]["position"])
    assert played["data"]["minutes"] == announced["data"]["said"].split("-")[1]
    assert answered["agent_id"] == "1004" and chinese.answered_calls() == 1
    assert english_only.invites_received() == 0, "the English-only agent was free but not asked"
    assert VIP_ACCOUNT not in json.dumps(events), "the account number is never written to the log"


def test_after_hours_the_service_line_goes_to_the_after_hours_flow_which_transfers_or_takes_a_message(
        engine_with_routing, stack_dir, asterisk):
    engine = engine_with_routing(flows_dir=service_flows(stack_dir / "flows-closed", hours="{}"))  # never open
    on_call = SippPhone("on-call", sip_port=5070, media_port=7600, mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1500,
                        workdir=stack_dir / "on-call")
    on_call.start()
    try:
        transferred = asyncio.run(new_caller("9", "13912340002", dial="5001", hold_ms=None).run(timeout=40))
    finally:
        on_call.stop()
    assert transferred.ok, transferred.describe()
    call_id = engine.call_id_for("13912340002")
    goto = engine.wait_for_event("ivr_goto", call_id=call_id)
    assert goto["data"] == {"node": "after_hours", "flow": "after_hours", "entry": "closed"}
    assert engine.wait_for_event("ivr_transfer", call_id=call_id)["data"]["to"] == "+8613900000000"
    (call,) = on_call.calls()
    assert call.answered_at is not None and call.caller == "13912340002", "the trunk rang the on-call phone"

    async def leave_message():
        caller = asyncio.create_task(new_caller("1", "13912340003", dial="5001", hold_ms=6000).run(timeout=40))
        seen = ""
        for _ in range(60):
            seen = await asyncio.to_thread(asterisk.cli, "core show channels concise")
            if "VoiceMail!support@callcenter" in seen:
                break
            await asyncio.sleep(0.25)
        return seen, await caller

    channels, result = asyncio.run(leave_message())
    assert result.ok, result.describe()
    assert "VoiceMail!support@callcenter" in channels, channels
    message_call = engine.call_id_for("13912340003")
    assert engine.wait_for_event("ivr_voicemail", call_id=message_call)["data"]["mailbox"] == "support"


def test_a_queue_nodes_own_max_wait_sends_its_caller_to_voicemail(engine_with_routing, stack_dir):
    flows = stack_dir / "flows-own-max-wait"
    flows.mkdir()
    (flows / "main.yaml").write_text("""start: sales
nodes:
  sales:
    type: queue
    queue: sales
    max_wait: {seconds: 3, then: voicemail}
""")
    engine = engine_with_routing(flows_dir=flows)  # sales has no max wait of its own; nobody is logged in
    result = asyncio.run(new_caller("", "13912340004", hold_ms=9000).run(timeout=40))
    assert result.ok, result.describe()
    call_id = engine.call_id_for("13912340004")
    exited = engine.wait_for_event("exited", call_id=call_id)
    assert exited["queue"] == "sales" and exited["data"]["reason"] == "max_wait:voicemail"
    assert 3.0 <= exited["data"]["wait"] < 4.0
