"""Who is calling the web side, and what they may do.

Three kinds of callers:
- **agents**, who log in to the desktop with their agent id and a password (hashed with Argon2id,
  argon2-cffi) and then hold a session cookie (random, HttpOnly, SameSite=Strict, kept in memory:
  an engine restart asks agents to log in again);
- **staff** (supervisors, QA analysts, admins): named users with a role and a password, stored the
  same way, who log in to the wallboard / QA pages and hold a staff session cookie;
- **ops tools** (the ``callcenter`` CLI, scripts, a supervisor's curl), which send the API token
  kept in ``<data_dir>/api-token`` (created 0600 on first start) as ``Authorization: Bearer``; the
  token acts as an admin.

Each API route declares which roles it serves (``Role``); an agent's routes act only on that
agent's own calls.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Column, Engine, Float, MetaData, String, Table, insert, select, update

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
SESSION_COOKIE = "cc_session"
API_TOKEN_FILE = "api-token"

metadata = MetaData()
credentials_table = Table(
    "agent_credentials", metadata,
    Column("agent_id", String(16), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("updated_at", Float, nullable=False),
)


staff_table = Table(
    "staff_users", metadata,
    Column("username", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("updated_at", Float, nullable=False),
)
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")


class Role(str, enum.Enum):
    PUBLIC = "public"  # anyone who can reach the port (health, the login itself)
    AGENT = "agent"  # an agent's session; the route acts on that agent only
    SUPERVISOR = "supervisor"  # runs the floor: wallboard, listen/whisper/barge, agents' states and skills
    QA = "qa"  # scores recorded calls
    ADMIN = "admin"  # everything; the API token is an admin


STAFF_ROLES = (Role.SUPERVISOR, Role.QA, Role.ADMIN)
# who may see the floor live (wallboard, queues, agents); most routes name one of these tuples
FLOOR = (Role.SUPERVISOR, Role.ADMIN)


@dataclass(frozen=True)
class Identity:
    role: Role
    agent_id: str | None = None  # for Role.AGENT
    username: str | None = None  # for staff; None for the API token

    def describe(self) -> str:
        if self.role is Role.AGENT:
            return f"agent {self.agent_id}"
        return f"{self.role.value} {self.username}" if self.username else "the API token"

    @property
    def actor(self) -> str:
        """Who did it, as the audit log writes it."""
        if self.role is Role.AGENT:
            return f"agent:{self.agent_id}"
        return f"{self.role.value}:{self.username or 'api-token'}"


class PasswordError(ValueError):
    """A new password is not acceptable (too short, ...)."""


class Credentials:
    """Agents' desktop passwords in the engine's database, as Argon2id hashes (``table`` keyed by
    its first column: agent ids; StaffUsers keys it by user name)."""

    table = credentials_table

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None):
        self.engine = engine
        self.hasher = hasher or PasswordHasher()
        self.key = self.table.c[self.table.primary_key.columns.keys()[0]]
        metadata.create_all(engine)

    def _hashed(self, password: str) -> dict:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise PasswordError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        return {"password_hash": self.hasher.hash(password), "updated_at": time.time()}

    def _save(self, name: str, row: dict, *, create: bool) -> bool:
        """Update ``name``'s row, or insert it when there is none and ``create``; whether it was saved."""
        with self.engine.begin() as conn:
            if conn.execute(update(self.table).where(self.key == name).values(row)).rowcount:
                return True
            if create:
                conn.execute(insert(self.table).values({self.key.name: name, **row}))
            return create

    def set_password(self, name: str, password: str) -> None:
        self._save(name, self._hashed(password), create=True)

    def has_password(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(self.key).where(self.key == name)).first() is not None

    def verify(self, name: str, password: str) -> bool:
        """Slow on purpose (Argon2): call it off the event loop."""
        with self.engine.connect() as conn:
            stored = conn.execute(select(self.table.c.password_hash)
                                  .where(self.key == name)).scalar_one_or_none()
        if stored is None:
            # the same work as a real check, so a wrong name cannot be told from a wrong password
            self.hasher.hash(password)
            return False
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        if self.hasher.check_needs_rehash(stored):
            self.set_password(name, password)
        return True


class StaffUsers(Credentials):
    """Supervisors, QA analysts and admins: a user name, a role and an Argon2id password hash."""

    table = staff_table

    def add(self, username: str, role: Role | str, password: str) -> None:
        """Create or update a user (its role and password)."""
        if not USERNAME.match(username):
            raise PasswordError(f"user name {username!r}: 2-32 characters, a-z first, then a-z 0-9 _ . -")
        role = Role(role)
        if role not in STAFF_ROLES:
            raise PasswordError(f"role {role.value!r}: a staff user is one of {[r.value for r in STAFF_ROLES]}")
        self._save(username, {**self._hashed(password), "role": role.value}, create=True)

    def set_password(self, name: str, password: str) -> None:
        if not self._save(name, self._hashed(password), create=False):
            raise LookupError(f"no staff user {name!r} (add it with a role first)")

    def role_of(self, username: str) -> Role | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(self.table.c.role).where(self.key == username)).scalar_one_or_none()
        return Role(value) if value else None

    def remove(self, username: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(self.table.delete().where(self.key == username)).rowcount > 0

    def list(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table.c.username, self.table.c.role, self.table.c.updated_at)
                                .order_by(self.key)).all()
        return [{"username": r.username, "role": r.role, "updated_at": r.updated_at} for r in rows]


@dataclass
class Session:
    who: Identity
    created: float
    last_seen: float


@dataclass
class LoginThrottle:
    """At most ``attempts`` failed logins per agent id in ``window`` seconds."""

    attempts: int = 5
    window: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def allowed(self, agent_id: str, now: float) -> bool:
        recent = self._failures.get(agent_id)
        if not recent:
            return True
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return len(recent) < self.attempts

    def failed(self, agent_id: str, now: float) -> None:
        self._failures.setdefault(agent_id, deque()).append(now)

    def succeeded(self, agent_id: str) -> None:
        self._failures.pop(agent_id, None)


class Sessions:
    """Sessions by random token; idle ones expire. One person may have several (two tabs)."""

    def __init__(self, idle_seconds: float, *, clock=time.time):
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._by_token: dict[str, Session] = {}

    def open(self, who: Identity | str) -> str:
        """A session for ``who`` (an agent id stands for that agent)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self._by_token[token] = Session(who if isinstance(who, Identity) else Identity(Role.AGENT, who), now, now)
        return token

    def identity_for(self, token: str | None) -> Identity | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_seconds:
            del self._by_token[token]
            return None
        session.last_seen = now
        return session.who

    def agent_for(self, token: str | None) -> str | None:
        who = self.identity_for(token)
        return who.agent_id if who is not None and who.role is Role.AGENT else None

    def close(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def close_agent(self, agent_id: str) -> None:
        for token in [t for t, s in self._by_token.items() if s.who == Identity(Role.AGENT, agent_id)]:
            del self._by_token[token]

    def close_user(self, username: str) -> None:
        for token in [t for t, s in self._by_token.items() if s.who.username == username]:
            del self._by_token[token]


def session_cookie(name: str, token: str, max_age: int | None = None) -> str:
    """A session cookie scripts cannot read and other sites' requests do not carry."""
    age = "" if max_age is None else f"; Max-Age={max_age}"
    return f"{name}={token}; HttpOnly; SameSite=Strict; Path=/{age}"


def read_api_token(data_dir: Path) -> str | None:
    """The token a running engine uses, for clients (None: no engine has started here yet)."""
    try:
        return (data_dir / API_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def api_token(data_dir: Path) -> str:
    """The ops API token, created (readable by its owner only) the first time it is needed."""
    path = data_dir / API_TOKEN_FILE
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    log.info("created the API token in %s", path)
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
