"""Who is calling the web side, and what they may do.

Two kinds of callers:
- **agents**, who log in to the desktop with their agent id and a password (hashed with Argon2id,
  argon2-cffi) and then hold a session cookie (random, HttpOnly, SameSite=Strict, kept in memory:
  an engine restart asks agents to log in again);
- **ops tools** (the ``callcenter`` CLI, scripts, a supervisor's curl), which send the API token
  kept in ``<data_dir>/api-token`` (created 0600 on first start) as ``Authorization: Bearer``.

Each API route declares which of them it serves (``Role``); an agent's routes act only on that
agent's own calls.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
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


class Role(str, enum.Enum):
    PUBLIC = "public"  # anyone who can reach the port (health, the login itself)
    AGENT = "agent"  # an agent's session; the route acts on that agent only
    OPS = "ops"  # the API token


@dataclass(frozen=True)
class Identity:
    role: Role
    agent_id: str | None = None  # for Role.AGENT

    def describe(self) -> str:
        return f"agent {self.agent_id}" if self.role is Role.AGENT else self.role.value


class PasswordError(ValueError):
    """A new password is not acceptable (too short, ...)."""


class Credentials:
    """Agents' desktop passwords in the engine's database, as Argon2id hashes."""

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None):
        self.engine = engine
        self.hasher = hasher or PasswordHasher()
        metadata.create_all(engine)

    def set_password(self, agent_id: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise PasswordError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        row = {"password_hash": self.hasher.hash(password), "updated_at": time.time()}
        with self.engine.begin() as conn:
            if conn.execute(update(credentials_table).where(credentials_table.c.agent_id == agent_id)
                            .values(row)).rowcount == 0:
                conn.execute(insert(credentials_table).values(agent_id=agent_id, **row))

    def has_password(self, agent_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(credentials_table.c.agent_id)
                                .where(credentials_table.c.agent_id == agent_id)).first() is not None

    def verify(self, agent_id: str, password: str) -> bool:
        """Slow on purpose (Argon2): call it off the event loop."""
        with self.engine.connect() as conn:
            stored = conn.execute(select(credentials_table.c.password_hash)
                                  .where(credentials_table.c.agent_id == agent_id)).scalar_one_or_none()
        if stored is None:
            # the same work as a real check, so a wrong agent id cannot be told from a wrong password
            self.hasher.hash(password)
            return False
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        if self.hasher.check_needs_rehash(stored):
            self.set_password(agent_id, password)
        return True


@dataclass
class Session:
    agent_id: str
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
    """Agent sessions by random token; idle ones expire. One agent may have several (two tabs)."""

    def __init__(self, idle_seconds: float, *, clock=time.time):
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._by_token: dict[str, Session] = {}

    def open(self, agent_id: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self._by_token[token] = Session(agent_id, now, now)
        return token

    def agent_for(self, token: str | None) -> str | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_seconds:
            del self._by_token[token]
            return None
        session.last_seen = now
        return session.agent_id

    def close(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def close_agent(self, agent_id: str) -> None:
        for token in [t for t, s in self._by_token.items() if s.agent_id == agent_id]:
            del self._by_token[token]


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
