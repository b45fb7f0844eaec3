"""Typed settings for the whole engine, validated at load time.

Every setting has a default that works on one machine (loopback, SQLite in ./.run). A YAML file
(``--config``) overrides any of them; unknown keys and bad values are refused with the field named.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import yaml
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callcenter.asterisk.provision import DEFAULT_ROOT
from callcenter.callback.model import CallbackPolicy
from callcenter.recording.model import RecordingsSettings
from callcenter.supervisor.wallboard import WallboardSettings

PROJECT_DIR = Path(__file__).resolve().parent.parent
AGENT_ID = re.compile(r"^[0-9]{3,6}$")
QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

SIP_CONTACT = re.compile(r"^sips?:[A-Za-z0-9_.+-]+@[A-Za-z0-9_.-]+(:[0-9]{1,5})?$")
CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DEFAULT_DISPOSITIONS = ("resolved", "follow_up", "escalated", "transferred", "sales_lead", "complaint",
                        "wrong_number")
DEFAULT_PAUSE_REASONS = ("break", "lunch", "training", "meeting", "coaching", "after_call_work")

Seconds = Annotated[float, Field(gt=0, le=3600)]
Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(ValueError):
    """A settings file could not be loaded; the message names the file and the field."""


def default_supervisor_phones() -> dict[str, str]:
    # the demo's staff user "supervisor" listens on a phone at 127.0.0.1:5120
    return {"supervisor": "sip:supervisor@127.0.0.1:5120"}


def default_agent_contacts() -> dict[str, str]:
    # agent1001 -> a phone on 127.0.0.1:5101, ... agent1010 -> 5110 (what tests and the demo use)
    return {str(n): f"sip:agent{n}@127.0.0.1:{5100 + n - 1000}" for n in range(1001, 1011)}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path(".run")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir")

    asterisk_root: Path = DEFAULT_ROOT
    asterisk_instance: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$")
    asterisk_conf_dir: Path = PROJECT_DIR / "asterisk_conf"
    dialplan_dir: Path = PROJECT_DIR / "dialplan"
    flows_dir: Path = PROJECT_DIR / "ivr_flows"
    flows_poll_seconds: Seconds = Field(1.0, description="how often the engine looks for edited flow files")
    routing_file: Path = Field(PROJECT_DIR / "routing.yaml", description="queues, strategies, steps, agents' skills")
    qa_forms_dir: Path = Field(PROJECT_DIR / "qa_forms", description="QA evaluation forms, one YAML file each")

    ami_host: str = "127.0.0.1"
    ami_port: Port = 5038
    ami_user: str = Field("callcenter", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    ami_secret: str = Field("callcenter-local-secret", min_length=8, pattern=r"^[A-Za-z0-9_.-]+$")
    ami_action_timeout: Seconds = 5.0
    ami_ping_interval: Seconds = Field(5.0, description="AMI Ping every so often; one unanswered within as long "
                                                         "drops the connection (a frozen peer is noticed in 2 intervals)")
    ami_reconnect_max: Seconds = Field(30.0, description="reconnection attempts back off 1, 2, 4 ... up to this")
    resync_boot_timeout: Seconds = Field(10.0, description="after an AMI login, how long the resync waits for "
                                                           "Asterisk's FullyBooted before reading the channels anyway")

    agi_host: str = "127.0.0.1"
    agi_port: Port = 4573
    agi_header_timeout: Seconds = 5.0
    agi_header_max_bytes: int = Field(16384, ge=1024, le=1_048_576)

    web_host: str = "127.0.0.1"
    web_port: Port = 8080

    agents: dict[str, str] = Field(default_factory=default_agent_contacts)
    supervisor_phones: dict[str, str] = Field(
        default_factory=default_supervisor_phones,
        description="staff user name -> the SIP phone their listen / whisper / barge calls ring")
    # where transfer nodes' numbers are sent (the trunk's outbound contact; see dialplan cc-outbound)
    trunk_contact: str = Field("sip:127.0.0.1:5070", pattern=r"^sips?:([A-Za-z0-9_.+-]+@)?[A-Za-z0-9_.-]+(:[0-9]{1,5})?$")
    transfer_ring_seconds: Annotated[int, Field(ge=5, le=300)] = 30
    # what customers' phones show when the center calls them (callbacks; campaigns have their own)
    outbound_caller_id: str = Field("+15550100000", pattern=r"^\+?[0-9]{3,20}$")
    callbacks: CallbackPolicy = Field(default_factory=CallbackPolicy,
                                      description="virtual hold and web callbacks: attempts, spacing, limits")
    campaign_tick_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        1.0, description="how often the campaign dialer looks for lines to start")

    ring_timeout: Seconds = 15.0
    phone_qualify_seconds: Annotated[int, Field(ge=0, le=300)] = Field(
        0, description="Asterisk checks each agent's phone this often (SIP OPTIONS); an agent whose phone "
                       "stops answering is paused (phone-offline) until it answers again; 0: no checks")
    wrapup_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    heartbeat_interval: Seconds = 2.0
    heartbeat_max_age: Annotated[int, Field(ge=2, le=600)] = 10
    hold_slice: Annotated[int, Field(ge=1, le=60)] = 2
    fallback_max_wait: Annotated[int, Field(ge=10, le=7200)] = 300
    max_hold_seconds: Annotated[int, Field(ge=10, le=86400)] = 1800  # then the fallback route
    crm_region: str = Field("CN", pattern=r"^[A-Z]{2}$",
                            description="default region for phone numbers without a country code")
    crm_lookup_timeout: Seconds = Field(0.5, description="a slower CRM lookup is treated as unknown caller")

    # the agent desktop
    dispositions: list[Annotated[str, Field(pattern=CODE.pattern)]] = Field(
        default_factory=lambda: list(DEFAULT_DISPOSITIONS), min_length=1,
        description="wrap-up codes an agent picks from (the interaction log's disposition)")
    pause_reasons: list[Annotated[str, Field(pattern=CODE.pattern)]] = Field(
        default_factory=lambda: list(DEFAULT_PAUSE_REASONS), min_length=1)
    session_idle_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 12 * 60
    pop_webhook_url: str | None = Field(None, pattern=r"^https?://[^\s]+$",
                                        description="POST every screen pop here as JSON (optional)")
    pop_webhook_secret: str | None = Field(None, min_length=16, description="signs webhook bodies (HMAC-SHA256)")
    pop_webhook_timeout: Seconds = 2.0

    recordings: RecordingsSettings = Field(default_factory=RecordingsSettings,
                                           description="retention per queue, who may play back and export")
    # the supervisor's wallboard (colour thresholds, push interval)
    wallboard: WallboardSettings = Field(default_factory=WallboardSettings)
    redis_url: str | None = Field(None, pattern=r"^rediss?://[^\s]+$",
                                  description="shared live state: engines with the same Redis serve the same "
                                              "queues (offers claimed there first); /api/health reports it")
    engine_name: str = Field("engine1", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,23}$",
                             description="this engine among those sharing a Redis: each needs its own")
    redis_prefix: str = Field("cc:", pattern=r"^[A-Za-z0-9_{}:.-]{1,32}$",
                              description="keys in Redis start with it ({cc}: on Redis Cluster)")

    # reports and live figures (docs/kpi.md)
    time_zone: str = Field("UTC", description="IANA zone of report intervals and of 'today' in live figures")
    sl_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(20.0, description="service-level threshold Y")
    sl_target: Annotated[float, Field(gt=0, le=1)] = Field(0.8, description="service-level target X (0..1)")
    short_abandon_seconds: Annotated[float, Field(ge=0, le=600)] = 5.0
    fcr_days: Annotated[float, Field(ge=0, le=365)] = Field(7.0, description="FCR repeat-contact window")

    @field_validator("agents")
    @classmethod
    def _agent_contacts(cls, agents: dict[str, str]) -> dict[str, str]:
        for agent_id, contact in agents.items():
            if not AGENT_ID.match(agent_id):
                raise ValueError(f"agent id {agent_id!r} must be 3 to 6 digits")
            if not SIP_CONTACT.match(contact):
                raise ValueError(f"agent {agent_id}: contact {contact!r} is not a sip:user@host[:port] URI")
        return agents

    @field_validator("supervisor_phones")
    @classmethod
    def _supervisor_phones(cls, phones: dict[str, str]) -> dict[str, str]:
        for username, contact in phones.items():
            if not re.match(r"^[a-z][a-z0-9_-]{1,31}$", username):
                raise ValueError(f"user name {username!r}: 2-32 characters, a-z first, then a-z 0-9 _ -")
            if not SIP_CONTACT.match(contact):
                raise ValueError(f"supervisor {username}: contact {contact!r} is not a sip:user@host[:port] URI")
        return phones

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai or UTC)") from None
        return name

    @field_validator("dispositions", "pause_reasons")
    @classmethod
    def _no_repeats(cls, codes: list[str]) -> list[str]:
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {repeated}")
        return codes

    @model_validator(mode="after")
    def _heartbeat_fits(self) -> "Settings":
        if self.heartbeat_max_age <= self.heartbeat_interval:
            raise ValueError("heartbeat_max_age must be longer than heartbeat_interval")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'callcenter.db').resolve()}"

    @classmethod
    def load(cls, path: Path | None = None, **overrides) -> "Settings":
        data: dict = {}
        if path is not None:
            try:
                data = yaml.safe_load(Path(path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"{path or 'settings'}: {len(exc.errors())} invalid setting(s)"]
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "(top level)"
                lines.append(f"  {field}: {err['msg']}")
            raise ConfigError("\n".join(lines)) from None
