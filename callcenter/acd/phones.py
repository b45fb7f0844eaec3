"""Agents' phones as Asterisk sees them: which device is whose phone, and whether a device state
means the phone can be rung. Pure; the engine feeds it DeviceStateChange events (and the
DeviceStateList a resync reads) and hands the answer to the router (``phone_reachability``).

Asterisk knows a phone is gone only when it checks it (``qualify``: SIP OPTIONS every
``phone_qualify_seconds``); without that every phone counts as reachable until an offer fails.
"""

from __future__ import annotations

import re

AGENT_DEVICE = re.compile(r"^PJSIP/agent(?P<agent>\d{3,6})$")
# The phone does not answer (qualify failed, nothing registered) or does not exist.
UNREACHABLE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
# Says nothing about reachability (no qualify result yet).
UNDECIDED_STATES = frozenset({"UNKNOWN", ""})


def device_agent(device: str) -> str | None:
    """The agent id whose phone ``device`` is (``PJSIP/agent1001`` -> ``1001``), else None."""
    match = AGENT_DEVICE.match((device or "").strip())
    return match["agent"] if match else None


def reachable(state: str) -> bool | None:
    """Whether a device state means the phone can be rung; None when it does not say."""
    state = (state or "").strip().upper()
    if state in UNDECIDED_STATES:
        return None
    return state not in UNREACHABLE_STATES
