"""The screen pop: what an agent sees the moment their phone starts ringing.

Pure: built from what the engine knows of the call (queue, wait, caller ID, the IVR's path and
inputs) and what the CRM answered (customer card, last contacts, open issues). The same document
goes to the agent's desktop (live channel), the JSON API and the outbound webhook.

Caller ID is not identity: a customer found by the calling number or by an account number the
caller typed is a *match*, never "verified" (``match.verified`` is always False here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from callcenter.crm.store import CustomerCard, Interaction, MatchedBy

CrmStatus = Literal["found", "not_found", "unavailable", "pending"]
# IVR events that tell the path through the flow and what the caller entered
IVR_STEP_KINDS = frozenset({
    "ivr_menu_choice", "ivr_menu_invalid", "ivr_menu_timeout", "ivr_input_ok", "ivr_input_invalid",
    "ivr_input_timeout", "ivr_lookup", "ivr_branch", "ivr_schedule", "ivr_set", "ivr_goto", "ivr_goto_missing",
    "ivr_queue", "ivr_step_limit"})
# IVR variables that are the engine's own bookkeeping, not the caller's input
HIDDEN_IVR_VARIABLES = frozenset({"customer_id", "customer_tier", "customer_language"})
HISTORY_LIMIT = 5
OPEN_ISSUES_LIMIT = 5


@dataclass(frozen=True)
class RingingCall:
    """What the engine knows of a call offered to an agent, without asking anyone."""

    call_id: str
    offer_id: str
    agent_id: str
    queue: str
    enqueued_at: float
    caller_number: str
    caller_name: str = ""
    ivr_flow: str | None = None
    ivr_variables: Mapping[str, str] = field(default_factory=dict)
    ivr_trail: Sequence[Mapping[str, Any]] = ()  # the IVR's events for this call, in order


@dataclass(frozen=True)
class CrmFacts:
    """What the CRM answered for the call (status 'pending' until it has)."""

    status: CrmStatus
    customer: CustomerCard | None = None
    history: Sequence[Interaction] = ()
    open_issues: Sequence[Interaction] = ()


def matched_by_ivr(ivr_events: Iterable[Mapping[str, Any]]) -> MatchedBy | None:
    """How the IVR's last successful lookup matched the customer (by number or account)."""
    by = None
    for event in ivr_events:
        data = event.get("data") or {}
        if event.get("kind") == "ivr_lookup" and data.get("status") == "found":
            by = "account" if data.get("by") == "account" else "phone"
    return by


def ivr_steps(ivr_events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The caller's path through the IVR: node, what happened there, the key or value."""
    steps = []
    for event in ivr_events:
        if event.get("kind") not in IVR_STEP_KINDS:
            continue
        data = dict(event.get("data") or {})
        steps.append({"kind": event["kind"].removeprefix("ivr_"), "node": data.pop("node", None),
                      **{k: v for k, v in data.items() if isinstance(v, (str, int, float, bool)) or v is None}})
    return steps


def interaction_view(item: Interaction) -> dict[str, Any]:
    return {"at": item.ts, "queue": item.queue, "agent_id": item.agent_id, "disposition": item.disposition,
            "resolved": item.resolved, "notes": item.notes}


def screen_pop(call: RingingCall, crm: CrmFacts, now: float) -> dict[str, Any]:
    """The pop document (plain JSON data; every string in it may come from a caller or the CRM,
    so whoever shows it must treat it as text)."""
    customer = crm.customer
    return {
        "call_id": call.call_id,
        "offer_id": call.offer_id,
        "agent_id": call.agent_id,
        "queue": call.queue,
        "waited": round(max(0.0, now - call.enqueued_at), 1),
        "enqueued_at": call.enqueued_at,
        "caller": {"number": call.caller_number or None, "name": call.caller_name or None},
        "crm": crm.status,
        "match": None if customer is None else {"by": customer.matched_by, "verified": False},
        "customer": None if customer is None else {
            "id": customer.id, "name": customer.name, "tier": customer.tier, "language": customer.language,
            "notes": customer.notes, "phones": list(customer.phones), "accounts": list(customer.accounts)},
        "history": [interaction_view(i) for i in crm.history],
        "open_issues": [interaction_view(i) for i in crm.open_issues],
        "ivr": {"flow": call.ivr_flow, "steps": ivr_steps(call.ivr_trail),
                "inputs": {k: v for k, v in call.ivr_variables.items() if k not in HIDDEN_IVR_VARIABLES}},
    }
