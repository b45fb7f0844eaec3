"""Hot reload of IVR flows on the real stack: an edit saved while a caller is inside the menu
serves the next caller, the caller already inside finishes on the version it started with, and
a broken edit is refused while the last good version keeps serving."""

from __future__ import annotations

import asyncio
import shutil

from callcenter.config import PROJECT_DIR
from tests.stack.conftest import new_caller


def queue_taken(engine, caller_number: str) -> str:
    call_id = engine.call_id_for(caller_number)
    return engine.wait_for_event("ivr_queue", call_id=call_id)["data"]["queue"]


def test_editing_a_flow_while_a_caller_is_in_it(engine_with_routing, stack_dir):
    flows = stack_dir / "flows-reload"
    flows.mkdir()
    main = flows / "main.yaml"
    shutil.copy(PROJECT_DIR / "ivr_flows" / "main.yaml", main)
    engine = engine_with_routing(flows_dir=flows, flows_poll_seconds=0.5)
    original = main.read_text()
    assert '{"1": sales, "2": support}' in original

    async def scenario():
        # A is in the welcome menu (its prompts play, then it presses 2 after 6 s) during the edit.
        first = asyncio.create_task(new_caller("2", "13900000041", answer_wait_ms=6000, hold_ms=500).run(timeout=40))
        await asyncio.to_thread(engine.call_id_for, "13900000041")
        main.write_text(original.replace('"2": support', '"2": sales'))
        loaded = await asyncio.to_thread(engine.wait_for_event, "flow_loaded", timeout=5)
        second = await new_caller("2", "13900000042", hold_ms=500).run(timeout=40)
        return loaded, await first, second

    loaded, first, second = asyncio.run(scenario())
    assert first.ok and second.ok, (first.describe(), second.describe())
    assert loaded["data"]["flow"] == "main" and loaded["data"]["source"] == str(main)
    assert queue_taken(engine, "13900000041") == "support", "the call in progress kept its version"
    assert queue_taken(engine, "13900000042") == "sales", "the next call got the edit"

    main.write_text(original.replace('"2": support', '"2": nowhere'))  # a dangling target
    rejected = engine.wait_for_event("flow_rejected", timeout=5)
    assert "nowhere" in rejected["data"]["problems"][0] and f"{main}:" in rejected["data"]["problems"][0]
    (status,) = engine.api("GET", "/api/flows")
    assert status["flow"] == "main" and "nowhere" in status["error"]
    third = asyncio.run(new_caller("2", "13900000043", hold_ms=500).run(timeout=40))
    assert third.ok and queue_taken(engine, "13900000043") == "sales", "the last good version still serves"
