"""Fixtures for tests against the real stack: the project's Asterisk (one per session), the engine
as a subprocess (one per test, so each starts from a clean routing state), and SIPp agent phones.

Nothing here is mocked. A missing Asterisk root is a failure, not a skip: `scripts/test` builds it.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import pytest

from callcenter.asterisk.process import AsteriskInstance
from callcenter.asterisk.provision import AsteriskRoot
from callcenter.config import Settings
from callcenter.sipp import SippCaller, SippPhone, agent_phone, caller_in_slot, caller_scenario
from tests.stack.harness import EngineProcess, write_settings

# Shorter than production so the suite stays quick; the logic is the same.
TEST_SETTINGS = dict(
    asterisk_instance="test",
    web_port=18081,
    ring_timeout=4,
    wrapup_seconds=1,
    heartbeat_interval=1,
    heartbeat_max_age=6,       # long enough for an engine restart (re-adoption test)
    max_hold_seconds=12,
    hold_slice=1,
    agi_header_timeout=2,
)
_caller_slots = itertools.count(0)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def settings_file(stack_dir) -> Path:
    return write_settings(stack_dir / "settings.yaml", data_dir=stack_dir / "data", **TEST_SETTINGS)


@pytest.fixture(scope="session")
def settings(settings_file) -> Settings:
    return Settings.load(settings_file)


@pytest.fixture(scope="module")
def asterisk(settings):
    # per module (it boots in well under a second): test_up_demo needs the ports free for its own
    if not AsteriskRoot(settings.asterisk_root).is_ready():
        pytest.fail(f"no Asterisk root at {settings.asterisk_root}: run scripts/install (or scripts/test)")
    instance = AsteriskInstance(settings)
    instance.start()
    yield instance
    instance.stop()


@contextlib.contextmanager
def running_engine(asterisk: AsteriskInstance, config_path: Path, log_path: Path):
    """The engine as a subprocess for one test; it must shut down cleanly afterwards."""
    proc = EngineProcess(config_path, log_path)
    proc.start()
    try:
        yield proc
    finally:  # also when the test's own code raised inside a ``with``: never leave an engine behind
        exit_code = proc.stop()
        _wait_no_channels(asterisk)
    assert exit_code in (0, None), f"engine did not shut down cleanly ({exit_code}):\n{proc.log_tail()}"


@pytest.fixture
def engine(asterisk, settings_file, stack_dir, request):
    with running_engine(asterisk, settings_file, stack_dir / f"engine-{request.node.name}.log") as proc:
        yield proc


@pytest.fixture
def engine_with_routing(asterisk, stack_dir, request):
    """engine_with_routing(yaml_text, **settings) starts the engine with that routing file
    instead of the project's, and any other settings changed (the Asterisk instance is shared,
    so the queues must be ones the flows know)."""
    with contextlib.ExitStack() as stack:
        def start(routing_text: str | None = None, **overrides) -> EngineProcess:
            name = request.node.name
            if routing_text is not None:
                routing = stack_dir / f"routing-{name}.yaml"
                routing.write_text(routing_text)
                overrides["routing_file"] = routing
            config = write_settings(stack_dir / f"settings-{name}.yaml",
                                    **{"data_dir": stack_dir / "data", **TEST_SETTINGS, **overrides})
            return stack.enter_context(running_engine(asterisk, config, stack_dir / f"engine-{name}.log"))
        yield start


def _wait_no_channels(asterisk: AsteriskInstance, timeout: float = 15.0) -> None:
    """Leave Asterisk idle for the next test: hang up whatever a failed test left behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "0 active channels" in asterisk.cli("core show channels count"):
            return
        time.sleep(0.3)
    asterisk.cli("channel request hangup all")


@pytest.fixture
def phones(stack_dir, settings):
    """phones(agent_id, mode=..., ...) starts a SIPp phone at that agent's contact port."""
    started: list[SippPhone] = []

    def start(agent_id: str, mode: str = "answer", **kwargs) -> SippPhone:
        phone = agent_phone(agent_id, settings.agents[agent_id], mode=mode,
                            workdir=stack_dir / f"phone-{agent_id}-{len(started)}-{time.monotonic_ns()}", **kwargs)
        phone.start()
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.stop()


def new_caller(keys: str, caller_number: str, *, dial: str = "5000", **scenario) -> SippCaller:
    """A SIPp caller dialling ``dial`` (5000: the main menu) on the project's Asterisk, on its own ports."""
    return caller_in_slot(next(_caller_slots) % 200, caller_scenario(keys, caller_number=caller_number, **scenario),
                          name=f"caller{caller_number}", service=dial)
