"""Runs an IVR flow for one caller over FastAGI: the pure interpreter decides, this only plays,
collects keys, asks the CRM, sets the prompt language, logs the trail as events and hands the
outcome back to the dialplan."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from callcenter.asterisk.fastagi import AgiChannel
from callcenter.events.log import EventLog
from callcenter.ivr.flow import Flow
from callcenter.ivr.interpreter import Collect, Finish, FlowResolver, IvrSession, Lookup, LookupStatus, Play

log = logging.getLogger(__name__)

# Answers a lookup node without ever raising: a slow or failing CRM is "unavailable".
AsyncLookup = Callable[[Lookup], Awaitable[tuple[LookupStatus, Mapping[str, Any] | None]]]


async def no_crm(_lookup: Lookup) -> tuple[LookupStatus, None]:
    return "unavailable", None


async def run_flow(channel: AgiChannel, flow: Flow, flow_name: str, events: EventLog, *,
                   flows: FlowResolver | None = None, lookup: AsyncLookup = no_crm,
                   trail: list[dict] | None = None, arrival: bool = True) -> Finish:
    """``arrival``: this flow starts the call (``call_arrived`` is logged); a post-call survey
    is not a new call."""
    call_id = channel.uniqueid
    if arrival:
        events.record("call_arrived", call_id=call_id,
                      data={"caller": channel.caller_number, "channel": channel.channel, "flow": flow_name,
                            "dnid": channel.headers.get("agi_dnid", "")})
    # The real clock, read once: a schedule node decides by when the call arrived.
    session = IvrSession(flow, caller_number=channel.caller_number, now=datetime.now(timezone.utc), flows=flows)
    logged = 0
    language: str | None = None  # the language last set on the channel (None: Asterisk's default)

    def log_trail() -> None:
        nonlocal logged
        for entry in session.trail[logged:]:
            event = {"kind": f"ivr_{entry.kind}", "data": {"node": entry.node, **entry.data}}
            events.record(event["kind"], call_id=call_id, data=event["data"])
            if trail is not None:  # the caller's copy (the screen pop shows the path)
                trail.append(event)
        logged = len(session.trail)

    async def follow_language() -> None:
        # Before anything is played, and once more at the end so the hold loop's announcements
        # and voicemail's prompts are in the caller's language too.
        nonlocal language
        if session.language is not None and session.language != language:
            await channel.set_language(session.language)
            language = session.language
            events.record("ivr_language", call_id=call_id, data={"language": language})

    instruction = session.start()
    try:
        while not isinstance(instruction, Finish):
            await follow_language()
            if isinstance(instruction, Collect):
                keys = await channel.get_data(instruction.prompts, instruction.timeout, instruction.max_digits)
                instruction = session.digits(keys)
            elif isinstance(instruction, Play):
                await channel.stream(instruction.prompts)
                instruction = session.played()
            elif isinstance(instruction, Lookup):
                instruction = session.looked_up(*await lookup(instruction))
            else:
                raise TypeError(f"unknown IVR instruction {instruction!r}")
            log_trail()
        await follow_language()
    finally:
        log_trail()
    # Finish.variables carries CC_ACTION (and the action's own CC_ variables) and the flow's
    # variables as CC_VAR_<name>: the dialplan acts on them. set_variable quotes each value.
    for name, value in instruction.variables.items():
        await channel.set_variable(name, value)
    return instruction
