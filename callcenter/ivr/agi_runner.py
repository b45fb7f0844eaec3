"""Runs an IVR flow for one caller over FastAGI: the pure interpreter decides, this only plays,
collects keys, logs the trail as events and hands the outcome back to the dialplan."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from callcenter.asterisk.fastagi import AgiChannel
from callcenter.events.log import EventLog
from callcenter.ivr.flow import Flow
from callcenter.ivr.interpreter import Collect, Finish, IvrSession, Play

log = logging.getLogger(__name__)


async def run_flow(channel: AgiChannel, flow: Flow, flow_name: str, events: EventLog) -> Finish:
    call_id = channel.uniqueid
    events.record("call_arrived", call_id=call_id,
                  data={"caller": channel.caller_number, "channel": channel.channel, "flow": flow_name,
                        "dnid": channel.headers.get("agi_dnid", "")})
    # The real clock, read once: a schedule node decides by when the call arrived.
    session = IvrSession(flow, caller_number=channel.caller_number, now=datetime.now(timezone.utc))
    logged = 0

    def log_trail() -> None:
        nonlocal logged
        for entry in session.trail[logged:]:
            events.record(f"ivr_{entry.kind}", call_id=call_id, data={"node": entry.node, **entry.data})
        logged = len(session.trail)

    instruction = session.start()
    try:
        while not isinstance(instruction, Finish):
            if isinstance(instruction, Collect):
                keys = await channel.get_data(instruction.prompts, instruction.timeout, instruction.max_digits)
                instruction = session.digits(keys)
            elif isinstance(instruction, Play):
                await channel.stream(instruction.prompts)
                instruction = session.played()
            else:
                raise TypeError(f"unknown IVR instruction {instruction!r}")
            log_trail()
    finally:
        log_trail()
    # Finish.variables carries CC_ACTION (and CC_QUEUE / CC_PRIORITY) and the flow's variables as
    # CC_VAR_<name>: the dialplan acts on them. set_variable quotes each value as one argument.
    for name, value in instruction.variables.items():
        await channel.set_variable(name, value)
    return instruction
