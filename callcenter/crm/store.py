"""The CRM store: customers with their phone and account numbers, looked up by either, and the
interactions agents record with them.

Synchronous on purpose: the engine calls it from a worker thread (see :mod:`callcenter.crm.lookup`),
the command line and the importer call it directly. What makes a customer's fields valid (tiers,
languages, account numbers, phone numbers) is decided here, once, for every way customers come in.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Column, Connection, Engine, Select, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from callcenter.crm.phone import PhoneNumberError, check_region, normalize_number
from callcenter.crm.schema import (
    accounts_table,
    check_schema,
    customers_table,
    interactions_table,
    phones_table,
)

log = logging.getLogger(__name__)

TIERS = ("vip", "gold", "regular")
DEFAULT_TIER = "regular"
LANGUAGE = re.compile(r"^[a-z]{2}$")            # ISO 639-1: 'en', 'zh'
ACCOUNT_NUMBER = re.compile(r"^[0-9]{4,20}$")
MAX_NAME_LENGTH = customers_table.c.name.type.length
MAX_LABEL_LENGTH = phones_table.c.label.type.length
MAX_CALLER_NUMBER_LENGTH = interactions_table.c.caller_number.type.length

# Numbers checked per query against existing ones: far below every backend's limit on bound parameters.
_QUERY_CHUNK = 500

MatchedBy = Literal["phone", "account"]


class CustomerDataError(ValueError):
    """A customer's field is not valid: the message names the value and what is wrong with it."""


class DuplicateNumberError(CustomerDataError):
    """A phone or account number given twice, or already belonging to a customer."""


# ------------------------------------------------------------------------------ field rules
def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise CustomerDataError("a customer needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise CustomerDataError(f"name longer than {MAX_NAME_LENGTH} characters")
    return name


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise CustomerDataError(f"{tier!r} is not a tier (one of: {', '.join(TIERS)})")
    return tier


def check_language(language: str | None) -> str | None:
    """A two-letter language code, or None for an empty one."""
    if not language:
        return None
    if not LANGUAGE.match(language):
        raise CustomerDataError(f"{language!r} is not a two-letter lower-case language code such as 'en'")
    return language


def check_account_number(account_number: str) -> str:
    if not ACCOUNT_NUMBER.match(account_number):
        raise CustomerDataError(f"{account_number!r} is not an account number (4 to 20 digits)")
    return account_number


def given_twice(kind: str, number: str) -> str:
    return f"{kind} {number} is given twice"


def already_taken(kind: str, number: str, owner: CustomerRef) -> str:
    return f"{kind} {number} already belongs to customer {owner.id} ({owner.name})"


# ------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class NewCustomer:
    """A customer checked and ready to store: phones in E.164, every field valid.

    Built by :meth:`CrmStore.new_customer`; the importer builds them field by field to report every
    problem of a row at once."""

    name: str
    phones: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    tier: str = DEFAULT_TIER
    language: str | None = None
    notes: str = ""
    phone_labels: tuple[tuple[str, str], ...] = ()   # (E.164, label) for the phones that have one


@dataclass(frozen=True)
class CustomerRef:
    """Who owns a number, for messages about duplicates."""

    id: int
    name: str


@dataclass(frozen=True)
class CustomerCard:
    """What an agent (and the IVR) sees of a customer found for a call."""

    id: int
    name: str
    tier: str
    language: str | None
    notes: str
    phones: tuple[str, ...]
    accounts: tuple[str, ...]
    matched_by: MatchedBy

    def ivr_facts(self) -> dict[str, str | int | None]:
        """What an IVR lookup node may keep in call variables: never the name, notes or numbers."""
        return {"id": self.id, "tier": self.tier, "language": self.language}


@dataclass(frozen=True)
class Interaction:
    """One recorded contact with a customer (a row of crm_interactions)."""

    id: int
    customer_id: int | None
    call_id: str | None
    ts: float
    caller_number: str | None
    queue: str | None
    agent_id: str | None
    disposition: str | None
    resolved: bool | None
    notes: str


# ------------------------------------------------------------------------------ the store
class CrmStore:
    """Customers in the CRM tables of ``engine``'s database, which ``migrate(engine)`` must have
    created (raises :class:`~callcenter.crm.schema.CrmSchemaError` otherwise). Phone numbers
    without a country code are read as dialled in ``region``."""

    def __init__(self, engine: Engine, region: str = "CN"):
        self.engine = engine
        self.region = check_region(region)
        check_schema(engine)

    def customer_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(customers_table)).scalar_one()

    # ---- adding customers
    def normalize(self, raw: str) -> str:
        """``raw`` in E.164 for this store's region (raises PhoneNumberError)."""
        return normalize_number(raw, self.region)

    def new_customer(self, name: str, *, phones: Iterable[str | tuple[str, str]] = (),
                     accounts: Iterable[str] = (), tier: str = DEFAULT_TIER, language: str | None = None,
                     notes: str = "") -> NewCustomer:
        """Check and normalise a customer's fields; the first problem raises a ValueError
        (CustomerDataError or PhoneNumberError). A phone is a number, or a (number, label) pair.
        Repeated numbers are caught when customers are stored."""
        e164s: list[str] = []
        labels: list[tuple[str, str]] = []
        for phone in phones:
            raw, label = phone if isinstance(phone, tuple) else (phone, "")
            e164s.append(self.normalize(raw))
            if len(label) > MAX_LABEL_LENGTH:
                raise CustomerDataError(f"phone label {label[:20]!r}... longer than {MAX_LABEL_LENGTH} characters")
            if label:
                labels.append((e164s[-1], label))
        return NewCustomer(name=check_name(name), phones=tuple(e164s),
                           accounts=tuple(check_account_number(a) for a in accounts),
                           tier=check_tier(tier), language=check_language(language), notes=notes,
                           phone_labels=tuple(labels))

    def add_customer(self, name: str, *, phones: Iterable[str | tuple[str, str]] = (),
                     accounts: Iterable[str] = (), tier: str = DEFAULT_TIER, language: str | None = None,
                     notes: str = "") -> int:
        """Store one customer and return its id. Invalid fields, or a phone or account number that
        is repeated or already someone else's, raise a ValueError and store nothing."""
        customer = self.new_customer(name, phones=phones, accounts=accounts, tier=tier,
                                     language=language, notes=notes)
        return self.add_customers([customer])[0]

    def add_customers(self, customers: Sequence[NewCustomer]) -> list[int]:
        """Store checked customers in one transaction, all or none; their ids, in order. Raises
        DuplicateNumberError (storing nothing) if a number is repeated or already taken."""
        _check_unique_across(customers)
        try:
            with self.engine.begin() as conn:
                phone_owners = self._phone_owners(conn, (p for c in customers for p in c.phones))
                account_owners = self._account_owners(conn, (a for c in customers for a in c.accounts))
                taken = [already_taken("phone", number, owner) for number, owner in phone_owners.items()]
                taken += [already_taken("account", number, owner) for number, owner in account_owners.items()]
                if taken:
                    raise DuplicateNumberError("; ".join(taken))
                ids = [self._insert(conn, customer) for customer in customers]
        except IntegrityError as exc:
            # Another writer took one of the numbers between the check and the insert.
            raise DuplicateNumberError(f"a phone or account number was taken meanwhile: {exc.orig}") from None
        log.info("CRM: stored %d customer(s)", len(ids))
        return ids

    def existing_owners(self, phones: Iterable[str], accounts: Iterable[str]
                        ) -> tuple[dict[str, CustomerRef], dict[str, CustomerRef]]:
        """Which of these E.164 phones and account numbers are already stored, and whose they are."""
        with self.engine.connect() as conn:
            return self._phone_owners(conn, phones), self._account_owners(conn, accounts)

    # ---- lookups
    def lookup_by_number(self, raw: str) -> CustomerCard | None:
        """The customer with this phone number, in any form a caller ID or a person writes it; None
        when nobody has it or it is not a phone number at all (withheld, 'anonymous', garbage)."""
        try:
            e164 = self.normalize(raw)
        except PhoneNumberError as exc:
            log.debug("CRM lookup: %s", exc)
            return None
        query = select(phones_table.c.customer_id).where(phones_table.c.e164 == e164)
        return self._card_for(query, "phone")

    def lookup_by_account(self, digits: str) -> CustomerCard | None:
        """The customer with this account number; None when nobody has it or it is not one."""
        digits = digits.strip()
        if not ACCOUNT_NUMBER.match(digits):
            return None
        query = select(accounts_table.c.customer_id).where(accounts_table.c.account_number == digits)
        return self._card_for(query, "account")

    def card(self, customer_id: int, matched_by: MatchedBy) -> CustomerCard | None:
        """The customer an earlier lookup found (the IVR's), saying how it was matched."""
        return self._card_for(select(customers_table.c.id).where(customers_table.c.id == customer_id), matched_by)

    # ---- interactions
    def record_interaction(self, *, customer_id: int | None, call_id: str | None = None,
                           caller_number: str | None = None, queue: str | None = None,
                           agent_id: str | None = None, disposition: str | None = None,
                           resolved: bool | None = None, notes: str = "", ts: float | None = None,
                           conn: Connection | None = None) -> int:
        """Record one contact with a customer (``customer_id`` None: a caller the CRM did not
        know); returns its id."""
        if caller_number is not None:
            # A caller ID is whatever the trunk sent; PostgreSQL would refuse one longer than the column.
            caller_number = caller_number[:MAX_CALLER_NUMBER_LENGTH]
        row = {"customer_id": customer_id, "call_id": call_id, "caller_number": caller_number,
               "queue": queue, "agent_id": agent_id, "disposition": disposition, "resolved": resolved,
               "notes": notes, "ts": time.time() if ts is None else ts}
        if conn is not None:  # inside the caller's transaction
            return conn.execute(insert(interactions_table).values(row)).inserted_primary_key[0]
        with self.engine.begin() as own:
            return own.execute(insert(interactions_table).values(row)).inserted_primary_key[0]

    def save_call_outcome(self, *, call_id: str, agent_id: str, customer_id: int | None = None,
                          caller_number: str | None = None, queue: str | None = None, ts: float | None = None,
                          **outcome: object) -> int:
        """The one interaction of an agent's call: created by the first save (the call ending, or
        the agent's wrap-up form, whichever comes first), completed by the next. ``outcome`` holds
        what the agent says (disposition, resolved, notes); unset fields keep their value."""
        unknown = set(outcome) - {"disposition", "resolved", "notes"}
        if unknown:
            raise ValueError(f"not an interaction outcome: {sorted(unknown)}")
        where = (interactions_table.c.call_id == call_id) & (interactions_table.c.agent_id == agent_id)
        with self.engine.begin() as conn:
            existing = conn.execute(select(interactions_table.c.id, interactions_table.c.customer_id)
                                    .where(where)).first()
            if existing is None:
                return self.record_interaction(customer_id=customer_id, call_id=call_id, caller_number=caller_number,
                                               queue=queue, agent_id=agent_id, ts=ts, **outcome, conn=conn)
            changes = dict(outcome)
            if existing.customer_id is None and customer_id is not None:
                changes["customer_id"] = customer_id
            if changes:
                conn.execute(update(interactions_table).where(interactions_table.c.id == existing.id).values(changes))
            return existing.id

    def open_issues(self, customer_id: int, limit: int = 5) -> list[Interaction]:
        """The customer's contacts an agent marked as not resolved, newest first."""
        return self._interactions(customer_id, limit, interactions_table.c.resolved.is_(False))

    def recent_interactions(self, customer_id: int, limit: int = 10) -> list[Interaction]:
        """The customer's latest interactions, newest first."""
        return self._interactions(customer_id, limit)

    def _interactions(self, customer_id: int, limit: int, *conditions) -> list[Interaction]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = (select(interactions_table).where(interactions_table.c.customer_id == customer_id, *conditions)
                 .order_by(interactions_table.c.ts.desc(), interactions_table.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [Interaction(**row._mapping) for row in conn.execute(query)]

    # ---- inside
    def _insert(self, conn: Connection, customer: NewCustomer) -> int:
        customer_id = conn.execute(insert(customers_table).values(
            name=customer.name, tier=customer.tier, language=customer.language, notes=customer.notes,
            created_at=time.time())).inserted_primary_key[0]
        labels = dict(customer.phone_labels)
        if customer.phones:
            conn.execute(insert(phones_table), [
                {"e164": e164, "customer_id": customer_id, "label": labels.get(e164)}
                for e164 in customer.phones])
        if customer.accounts:
            conn.execute(insert(accounts_table), [
                {"account_number": number, "customer_id": customer_id} for number in customer.accounts])
        return customer_id

    def _card_for(self, customer_id_query: Select[tuple[int]], matched_by: MatchedBy) -> CustomerCard | None:
        with self.engine.connect() as conn:
            customer_id = conn.execute(customer_id_query).scalar_one_or_none()
            if customer_id is None:
                return None
            customer = conn.execute(select(customers_table).where(customers_table.c.id == customer_id)).one()
            phones = conn.execute(select(phones_table.c.e164).where(phones_table.c.customer_id == customer_id)
                                  .order_by(phones_table.c.e164)).scalars().all()
            accounts = conn.execute(select(accounts_table.c.account_number)
                                    .where(accounts_table.c.customer_id == customer_id)
                                    .order_by(accounts_table.c.account_number)).scalars().all()
        return CustomerCard(id=customer.id, name=customer.name, tier=customer.tier, language=customer.language,
                            notes=customer.notes, phones=tuple(phones), accounts=tuple(accounts),
                            matched_by=matched_by)

    def _phone_owners(self, conn: Connection, e164s: Iterable[str]) -> dict[str, CustomerRef]:
        return _owners(conn, phones_table.c.e164, phones_table.c.customer_id, e164s)

    def _account_owners(self, conn: Connection, numbers: Iterable[str]) -> dict[str, CustomerRef]:
        return _owners(conn, accounts_table.c.account_number, accounts_table.c.customer_id, numbers)


def _owners(conn: Connection, number_column: Column[str], customer_id_column: Column[int],
            numbers: Iterable[str]) -> dict[str, CustomerRef]:
    """number -> its owner, for those of ``numbers`` stored in ``number_column``."""
    owners: dict[str, CustomerRef] = {}
    for chunk in _chunks(sorted(set(numbers)), _QUERY_CHUNK):
        query = (select(number_column, customers_table.c.id, customers_table.c.name)
                 .join(customers_table, customers_table.c.id == customer_id_column)
                 .where(number_column.in_(chunk)))
        for number, customer_id, name in conn.execute(query):
            owners[number] = CustomerRef(customer_id, name)
    return owners


def _check_unique_across(customers: Sequence[NewCustomer]) -> None:
    """No phone or account number twice among customers stored together."""
    for kind, numbers in (("phone", [p for c in customers for p in c.phones]),
                          ("account", [a for c in customers for a in c.accounts])):
        seen: set[str] = set()
        for number in numbers:
            if number in seen:
                raise DuplicateNumberError(given_twice(kind, number))
            seen.add(number)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
