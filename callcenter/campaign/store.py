"""The campaign store: campaigns, their contacts, and the do-not-call list, in SQL (SQLAlchemy Core;
SQLite and PostgreSQL).

Synchronous on purpose: the engine's dialer calls it from a worker thread (``asyncio.to_thread``),
the command line and the importer call it directly. The tables live in their own ``MetaData`` and
are created by :func:`create_tables` (idempotent), which the command line and the engine run before
using them.

The store keeps the dialer honest across crashes and concurrent writers: a contact is dialled only
by whoever wins :meth:`CampaignStore.claim_for_dialing` (a conditional UPDATE, pending -> dialing),
and an attempt's outcome is recorded once (only while the contact is still being dialled).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from callcenter.campaign.model import (
    COMPLETED,
    DIALING,
    DNC,
    DRAFT,
    FINAL_STATUSES,
    INVALID,
    OUTCOMES,
    PENDING,
    RUNNING,
    STATUSES,
    STOPPED,
    CampaignSpec,
    Decision,
    check_transition,
)

log = logging.getLogger(__name__)

E164 = re.compile(r"^\+[1-9][0-9]{5,14}$")
MAX_CONTACT_NAME = 200
MAX_CUSTOMER_ID = 64
MAX_REASON = 200
# Numbers checked per query: far below every backend's limit on bound parameters.
_QUERY_CHUNK = 500

# Named constraints, as the CRM's tables do, so a later migration can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
campaign_metadata = MetaData(naming_convention=NAMING_CONVENTION)

campaigns_table = Table(
    "campaigns", campaign_metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("spec_json", JSON, nullable=False),      # CampaignSpec.to_json(), validated on the way in and out
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

contacts_table = Table(
    "campaign_contacts", campaign_metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("number", String(16), nullable=False),   # E.164: '+' and at most 15 digits
    Column("name", String(MAX_CONTACT_NAME)),
    Column("customer_id", String(MAX_CUSTOMER_ID)),  # text: an id in this CRM or in another system
    Column("data_json", JSON, nullable=False),      # the CSV's other columns, for the agent's screen
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),   # calls placed (claims won)
    Column("outcomes_json", JSON, nullable=False),  # outcome -> how many times
    Column("last_outcome", String(16)),
    Column("next_attempt_at", Float),               # a retry is due at or after this (pending only)
    Column("call_id", String(64)),                  # the current or last attempt's Asterisk channel id
    Column("disposition", String(64)),              # the agent's wrap-up code of the connected call
    Column("updated_at", Float, nullable=False),
    Column("row", Integer),                         # the CSV line the contact came from
    UniqueConstraint("campaign_id", "number"),
    # what due_contacts reads: one campaign's pending contacts by due time (also serves campaign_id)
    Index(None, "campaign_id", "status", "next_attempt_at"),
    Index(None, "call_id"),
)

dnc_table = Table(
    "dnc_numbers", campaign_metadata,
    Column("number", String(16), primary_key=True),
    Column("reason", String(MAX_REASON), nullable=False, default=""),
    Column("added_at", Float, nullable=False),
)


def create_tables(engine: Engine) -> None:
    """Create the campaign tables that do not exist yet (a no-op when they all do)."""
    campaign_metadata.create_all(engine, checkfirst=True)


class CampaignStoreError(ValueError):
    """A request the store refuses; the message says why (unknown campaign, name taken, a state
    change that is not allowed, a number stored twice...)."""


class UnknownCampaignError(CampaignStoreError):
    pass


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    spec: CampaignSpec
    state: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class NewContact:
    """A contact checked and ready to store (the importer builds them): ``number`` in E.164."""

    number: str
    name: str | None = None
    customer_id: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    status: str = PENDING       # or DNC: on the do-not-call list when imported
    row: int | None = None


@dataclass(frozen=True)
class ContactRow:
    id: int
    campaign_id: int
    number: str
    name: str | None
    customer_id: str | None
    data: Mapping[str, Any]
    status: str
    attempts: int
    outcomes: Mapping[str, int]   # counts by outcome, what model.after_outcome takes
    last_outcome: str | None
    next_attempt_at: float | None
    call_id: str | None
    disposition: str | None
    updated_at: float
    row: int | None


@dataclass(frozen=True)
class DncEntry:
    number: str
    reason: str
    added_at: float


def check_e164(number: str) -> str:
    """``number`` itself if it has the E.164 shape; the store never normalises (callers do, with
    the region they know)."""
    if not isinstance(number, str) or not E164.match(number):
        raise CampaignStoreError(f"{number!r} is not a number in E.164 form (e.g. +14155550100)")
    return number


class CampaignStore:
    """Campaigns in ``engine``'s database; :func:`create_tables` must have been run on it."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # ---------------------------------------------------------------- campaigns
    def create(self, spec: CampaignSpec, *, now: float | None = None) -> int:
        """Store a new campaign, in state draft; its id. A name already used is refused."""
        now = time.time() if now is None else now
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(campaigns_table.c.id).where(campaigns_table.c.name == spec.name)).first():
                    raise CampaignStoreError(_name_taken(spec.name))
                return conn.execute(insert(campaigns_table).values(
                    name=spec.name, spec_json=spec.to_json(), state=DRAFT, created_at=now,
                    updated_at=now)).inserted_primary_key[0]
        except IntegrityError:  # created by another writer between the check and the insert
            raise CampaignStoreError(_name_taken(spec.name)) from None

    def replace_spec(self, name: str, spec: CampaignSpec, *, now: float | None = None) -> CampaignRow:
        """Give campaign ``name`` a new spec (same name). Refused while it runs: the dialer reads
        the spec as it goes, and a change should be seen whole, after a pause."""
        if spec.name != name:
            raise CampaignStoreError(f"the spec is for campaign {spec.name!r}, not {name!r} (a campaign "
                                     "cannot be renamed)")
        with self.engine.begin() as conn:
            current = self._get(conn, campaigns_table.c.name == name, name)
            if current.state == RUNNING:
                raise CampaignStoreError(f"campaign {name!r} is running: pause it before changing it")
            conn.execute(update(campaigns_table).where(campaigns_table.c.id == current.id).values(
                spec_json=spec.to_json(), updated_at=time.time() if now is None else now))
            return self._get(conn, campaigns_table.c.id == current.id, name)

    def get(self, name: str) -> CampaignRow:
        """Campaign ``name``; UnknownCampaignError if there is none."""
        with self.engine.connect() as conn:
            return self._get(conn, campaigns_table.c.name == name, name)

    def get_by_id(self, campaign_id: int) -> CampaignRow:
        with self.engine.connect() as conn:
            return self._get(conn, campaigns_table.c.id == campaign_id, f"#{campaign_id}")

    def list(self) -> list[CampaignRow]:
        """Every campaign, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(campaigns_table).order_by(campaigns_table.c.name)).mappings().all()
        return [_campaign(row) for row in rows]

    def set_state(self, name: str, state: str, *, now: float | None = None) -> CampaignRow:
        """Move campaign ``name`` to ``state`` if that change is allowed (model.TRANSITIONS):
        draft -> running, running <-> paused, draft|running|paused -> stopped, running ->
        completed. CampaignStoreError otherwise, saying which changes are allowed."""
        with self.engine.begin() as conn:
            current = self._get(conn, campaigns_table.c.name == name, name)
            try:
                check_transition(current.state, state)
            except ValueError as exc:
                raise CampaignStoreError(f"campaign {name!r}: {exc}") from None
            # Conditional on the state read: of two concurrent changes, the second sees its
            # starting state gone and fails instead of overwriting the first.
            changed = conn.execute(update(campaigns_table).where(
                campaigns_table.c.id == current.id, campaigns_table.c.state == current.state).values(
                state=state, updated_at=time.time() if now is None else now)).rowcount
            if changed != 1:
                raise CampaignStoreError(f"campaign {name!r} changed state meanwhile; try again")
            log.info("campaign %s: %s -> %s", name, current.state, state)
            return self._get(conn, campaigns_table.c.id == current.id, name)

    # ---------------------------------------------------------------- contacts
    def add_contacts(self, campaign_id: int, rows: Iterable[NewContact], *, now: float | None = None) -> int:
        """Store contacts in one transaction, all or none; how many. A number given twice, or
        already in the campaign, raises CampaignStoreError and stores nothing. A stopped or
        completed campaign takes no more contacts."""
        now = time.time() if now is None else now
        values = [_contact_values(campaign_id, row, now) for row in rows]
        numbers = [v["number"] for v in values]
        if len(set(numbers)) != len(numbers):
            twice = next(n for n in numbers if numbers.count(n) > 1)
            raise CampaignStoreError(f"number {twice} is given twice")
        try:
            with self.engine.begin() as conn:
                campaign = self._get(conn, campaigns_table.c.id == campaign_id, f"#{campaign_id}")
                if campaign.state in (STOPPED, COMPLETED):
                    raise CampaignStoreError(f"campaign {campaign.name!r} is {campaign.state}: it takes no more "
                                             "contacts (create a new campaign)")
                taken = _existing(conn, campaign_id, numbers)
                if taken:
                    raise CampaignStoreError(f"number {min(taken)} is already in campaign {campaign.name!r}")
                if values:
                    conn.execute(insert(contacts_table), values)
        except IntegrityError as exc:  # another writer stored one of the numbers meanwhile
            raise CampaignStoreError(f"a number was added to the campaign meanwhile: {exc.orig}") from None
        return len(values)

    def existing_numbers(self, campaign_id: int, numbers: Iterable[str]) -> dict[str, int | None]:
        """Which of ``numbers`` campaign ``campaign_id`` already has, each with the CSV line it
        came from."""
        with self.engine.connect() as conn:
            return _existing(conn, campaign_id, numbers)

    def contact(self, contact_id: int) -> ContactRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(contacts_table).where(contacts_table.c.id == contact_id)).mappings().first()
        return _contact(row) if row is not None else None

    def contact_by_call_id(self, call_id: str) -> ContactRow | None:
        """The contact whose current or last attempt is the call ``call_id``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(contacts_table).where(contacts_table.c.call_id == call_id)
                               .order_by(contacts_table.c.id.desc())).mappings().first()
        return _contact(row) if row is not None else None

    def contacts(self, campaign_id: int) -> list[ContactRow]:
        """Every contact of the campaign, in the order they were added."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(contacts_table).where(contacts_table.c.campaign_id == campaign_id)
                                .order_by(contacts_table.c.id)).mappings().all()
        return [_contact(row) for row in rows]

    def due_contacts(self, campaign_id: int, now: float, limit: int) -> list[ContactRow]:
        """Pending contacts whose retry (if any) is due at ``now``: first those never tried, then
        by due time, then in the order they were added."""
        if limit < 1:
            return []
        c = contacts_table.c
        query = (select(contacts_table)
                 .where(c.campaign_id == campaign_id, c.status == PENDING,
                        or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
                 # nulls_first: PostgreSQL would otherwise sort them last, SQLite first
                 .order_by(c.next_attempt_at.asc().nulls_first(), c.id)
                 .limit(limit))
        with self.engine.connect() as conn:
            return [_contact(row) for row in conn.execute(query).mappings()]

    def claim_for_dialing(self, contact_id: int, call_id: str, now: float) -> bool:
        """Take a due pending contact for one call: pending -> dialing, one more attempt, ``call_id``
        noted. True for the one caller that wins; False if it is not pending (or not due) any more:
        a contact is dialled at most once per claim, whoever else tries."""
        c = contacts_table.c
        with self.engine.begin() as conn:
            won = conn.execute(update(contacts_table).where(
                c.id == contact_id, c.status == PENDING,
                or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
            ).values(status=DIALING, attempts=c.attempts + 1, call_id=call_id, next_attempt_at=None,
                     updated_at=now)).rowcount
        return won == 1

    def record_outcome(self, contact_id: int, outcome: str, decision: Decision, now: float, *,
                       call_id: str | None = None) -> bool:
        """Count ``outcome`` for the contact and apply ``decision`` (``model.after_outcome``'s):
        its status, and when a retry is due. Only a contact still pending or dialing is changed;
        with ``call_id``, only one still dialing that very call — so an outcome reported twice is
        counted once. Whether it was recorded."""
        if outcome not in OUTCOMES:
            raise ValueError(f"{outcome!r} is not a contact outcome (one of: {', '.join(OUTCOMES)})")
        if decision.status not in STATUSES:
            raise ValueError(f"{decision.status!r} is not a contact status (one of: {', '.join(STATUSES)})")
        c = contacts_table.c
        with self.engine.begin() as conn:
            current = conn.execute(select(c.status, c.call_id, c.outcomes_json).where(c.id == contact_id)
                                   .with_for_update()).first()
            if current is None:
                return False
            if call_id is not None and (current.status != DIALING or current.call_id != call_id):
                return False
            if current.status not in (PENDING, DIALING):
                return False
            counts = dict(current.outcomes_json or {})
            counts[outcome] = counts.get(outcome, 0) + 1
            changed = conn.execute(update(contacts_table).where(
                c.id == contact_id, c.status == current.status).values(
                status=decision.status, last_outcome=outcome, outcomes_json=counts,
                next_attempt_at=decision.next_attempt_at if decision.status == PENDING else None,
                updated_at=now)).rowcount
        return changed == 1

    def set_disposition(self, call_id: str, disposition: str, *, now: float | None = None) -> bool:
        """Note the agent's wrap-up code on the contact of call ``call_id``; whether there is one."""
        with self.engine.begin() as conn:
            return conn.execute(update(contacts_table).where(contacts_table.c.call_id == call_id).values(
                disposition=disposition, updated_at=time.time() if now is None else now)).rowcount > 0

    def dialing_contacts(self, campaign_id: int | None = None) -> list[ContactRow]:
        """Contacts claimed for a call whose outcome was not recorded: after a restart, the calls
        the dialer lost track of (record them as ``interrupted``)."""
        query = select(contacts_table).where(contacts_table.c.status == DIALING).order_by(contacts_table.c.id)
        if campaign_id is not None:
            query = query.where(contacts_table.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [_contact(row) for row in conn.execute(query).mappings()]

    def progress(self, campaign_id: int) -> dict[str, Any]:
        """``total`` contacts, ``by_status`` (every status, 0 included), ``by_outcome`` (contacts by
        their last outcome, every outcome), ``attempts`` (calls placed), ``connected`` (contacts
        done) and ``finished`` (contacts with a final status: done, failed, dnc, invalid)."""
        c = contacts_table.c
        by_status = dict.fromkeys(STATUSES, 0)
        by_outcome = dict.fromkeys(OUTCOMES, 0)
        with self.engine.connect() as conn:
            for status, count in conn.execute(select(c.status, func.count()).where(c.campaign_id == campaign_id)
                                              .group_by(c.status)):
                by_status[status] = count
            for outcome, count in conn.execute(select(c.last_outcome, func.count())
                                               .where(c.campaign_id == campaign_id, c.last_outcome.is_not(None))
                                               .group_by(c.last_outcome)):
                by_outcome[outcome] = count
            attempts = conn.execute(select(func.coalesce(func.sum(c.attempts), 0))
                                    .where(c.campaign_id == campaign_id)).scalar_one()
        return {"total": sum(by_status.values()), "by_status": by_status, "by_outcome": by_outcome,
                "attempts": int(attempts), "connected": by_status["done"],
                "finished": sum(by_status[s] for s in FINAL_STATUSES)}

    def all_done(self, campaign_id: int) -> bool:
        """No contact left to dial or being dialled."""
        c = contacts_table.c
        with self.engine.connect() as conn:
            return conn.execute(select(c.id).where(c.campaign_id == campaign_id,
                                                   c.status.in_((PENDING, DIALING))).limit(1)).first() is None

    # ---------------------------------------------------------------- do not call
    def dnc_add(self, number: str, reason: str = "", *, now: float | None = None) -> bool:
        """Put an E.164 number on the do-not-call list; False if it already was (reason kept)."""
        return self.dnc_add_many([number], reason, now=now) == 1

    def dnc_add_many(self, numbers: Iterable[str], reason: str = "", *, now: float | None = None) -> int:
        """Put E.164 numbers on the list in one transaction; how many were not on it yet."""
        return self.dnc_add_entries(((number, reason) for number in numbers), now=now)

    def dnc_add_entries(self, entries: Iterable[tuple[str, str]], *, now: float | None = None) -> int:
        """Put (E.164 number, reason) pairs on the list in one transaction; how many were not on
        it yet. A number already listed keeps its reason; of a number given twice, the first wins."""
        wanted: dict[str, str] = {}
        for number, reason in entries:
            wanted.setdefault(check_e164(number), reason[:MAX_REASON])
        now = time.time() if now is None else now
        try:
            with self.engine.begin() as conn:
                listed = _listed(conn, wanted)
                new = [{"number": n, "reason": r, "added_at": now} for n, r in wanted.items() if n not in listed]
                if new:
                    conn.execute(insert(dnc_table), new)
        except IntegrityError:  # listed by another writer meanwhile: add what is still missing
            return self.dnc_add_entries(wanted.items(), now=now)
        return len(new)

    def dnc_remove(self, number: str) -> bool:
        """Take a number off the list; False if it was not on it."""
        with self.engine.begin() as conn:
            return conn.execute(delete(dnc_table).where(dnc_table.c.number == check_e164(number))).rowcount > 0

    def dnc_listed(self, number: str) -> bool:
        """Whether the E.164 ``number`` is on the do-not-call list. The dialer asks right before
        each call: a number listed after the contacts were imported is still never dialled."""
        with self.engine.connect() as conn:
            return conn.execute(select(dnc_table.c.number).where(dnc_table.c.number == number)).first() is not None

    def dnc_listed_among(self, numbers: Iterable[str]) -> set[str]:
        """Those of ``numbers`` on the do-not-call list."""
        with self.engine.connect() as conn:
            return _listed(conn, numbers)

    def dnc_list(self) -> list[DncEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(dnc_table).order_by(dnc_table.c.number)).mappings().all()
        return [DncEntry(row["number"], row["reason"], row["added_at"]) for row in rows]

    # ---------------------------------------------------------------- inside
    def _get(self, conn: Connection, where: Any, shown: str) -> CampaignRow:
        row = conn.execute(select(campaigns_table).where(where)).mappings().first()
        if row is None:
            raise UnknownCampaignError(f"no campaign {shown!r}" if not shown.startswith("#")
                                       else f"no campaign with id {shown[1:]}")
        return _campaign(row)


def _name_taken(name: str) -> str:
    return f"a campaign named {name!r} already exists (change it with 'callcenter campaign update')"


def _campaign(row: RowMapping) -> CampaignRow:
    return CampaignRow(id=row["id"], name=row["name"], spec=CampaignSpec.model_validate(row["spec_json"]),
                       state=row["state"], created_at=row["created_at"], updated_at=row["updated_at"])


def _contact(row: RowMapping) -> ContactRow:
    return ContactRow(id=row["id"], campaign_id=row["campaign_id"], number=row["number"], name=row["name"],
                      customer_id=row["customer_id"], data=dict(row["data_json"] or {}), status=row["status"],
                      attempts=row["attempts"], outcomes=dict(row["outcomes_json"] or {}),
                      last_outcome=row["last_outcome"], next_attempt_at=row["next_attempt_at"],
                      call_id=row["call_id"], disposition=row["disposition"], updated_at=row["updated_at"],
                      row=row["row"])


def _contact_values(campaign_id: int, contact: NewContact, now: float) -> dict[str, Any]:
    if contact.status not in (PENDING, DNC, INVALID):
        raise CampaignStoreError(f"a new contact is pending, dnc or invalid, not {contact.status!r}")
    if contact.name is not None and len(contact.name) > MAX_CONTACT_NAME:
        raise CampaignStoreError(f"name longer than {MAX_CONTACT_NAME} characters")
    if contact.customer_id is not None and len(contact.customer_id) > MAX_CUSTOMER_ID:
        raise CampaignStoreError(f"customer_id longer than {MAX_CUSTOMER_ID} characters")
    return {"campaign_id": campaign_id, "number": check_e164(contact.number), "name": contact.name,
            "customer_id": contact.customer_id, "data_json": dict(contact.data), "status": contact.status,
            "attempts": 0, "outcomes_json": {}, "last_outcome": None, "next_attempt_at": None,
            "call_id": None, "disposition": None, "updated_at": now, "row": contact.row}


def _existing(conn: Connection, campaign_id: int, numbers: Iterable[str]) -> dict[str, int | None]:
    c = contacts_table.c
    found: dict[str, int | None] = {}
    for chunk in _chunks(sorted(set(numbers))):
        query = select(c.number, c.row).where(c.campaign_id == campaign_id, c.number.in_(chunk))
        found.update((number, row) for number, row in conn.execute(query))
    return found


def _listed(conn: Connection, numbers: Iterable[str]) -> set[str]:
    listed: set[str] = set()
    for chunk in _chunks(sorted(set(numbers))):
        listed.update(conn.execute(select(dnc_table.c.number).where(dnc_table.c.number.in_(chunk))).scalars())
    return listed


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _QUERY_CHUNK):
        yield items[start:start + _QUERY_CHUNK]
