"""Render an Asterisk instance from the project's asterisk_conf/ and dialplan/, start it inside the
provisioned root, wait until it is fully booted, and stop it again.

Each instance has its own folder inside the root (``/var/lib/callcenter/<name>``): configuration,
spool, logs, AstDB and recordings, so test runs and ``callcenter up`` never share state.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from callcenter.asterisk.provision import AsteriskRoot, ProvisionError
from callcenter.acd.config import load_routing
from callcenter.config import Settings
from callcenter.asterisk.names import supervisor_endpoint

log = logging.getLogger(__name__)
# Queue voicemail boxes are read from their files, never through VoiceMailMain (no dialplan
# reaches it), so the box password is a placeholder nobody can dial in with.
VOICEMAIL_PIN = "0000"


class AsteriskStartError(RuntimeError):
    """Asterisk did not come up; the message carries the tail of its log."""


class AsteriskInstance:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = AsteriskRoot(settings.asterisk_root)
        self.inst_in_root = f"/var/lib/callcenter/{settings.asterisk_instance}"
        self.host_dir = settings.asterisk_root / self.inst_in_root.lstrip("/")
        self.proc: subprocess.Popen | None = None
        self._mounted_proc = False

    # ------------------------------------------------------------------ paths
    @property
    def etc_dir(self) -> Path:
        return self.host_dir / "etc"

    @property
    def recordings_dir(self) -> Path:
        """Where recordings land, as seen from the host."""
        return self.host_dir / "recordings"

    @property
    def log_file(self) -> Path:
        return self.host_dir / "log" / "console.log"

    @property
    def conf_in_root(self) -> str:
        return f"{self.inst_in_root}/etc/asterisk.conf"

    # ------------------------------------------------------------------ config
    def render(self) -> None:
        """Copy the project's config and dialplan into the instance and render the generated parts."""
        s = self.settings
        if self.etc_dir.exists():
            shutil.rmtree(self.etc_dir)
        for sub in ("etc", "lib", "db", "spool", "run", "log", "recordings"):
            (self.host_dir / sub).mkdir(parents=True, exist_ok=True)
        for source in (s.asterisk_conf_dir, s.dialplan_dir):
            for f in sorted(source.glob("*.conf")):
                shutil.copy2(f, self.etc_dir / f.name)
        templates = {"inst": self.inst_in_root, "ami_user": s.ami_user, "ami_secret": s.ami_secret}
        for tmpl in sorted(s.asterisk_conf_dir.glob("*.conf.in")):
            text = tmpl.read_text()
            for key, value in templates.items():
                text = text.replace("{" + key + "}", value)
            (self.etc_dir / tmpl.name.removesuffix(".in")).write_text(text)
        self._write("pjsip_agents.conf", self._agents_conf())
        self._write("pjsip_trunk.conf", f"[trunk-out]\ntype = aor\ncontact = {s.trunk_contact}\n")
        self._write("queues_fallback_members.conf",
                    "".join(f"member => PJSIP/agent{a}\n" for a in sorted(s.agents)))
        queues = load_routing(s.routing_file).queue_names
        self._write("voicemail_queues.conf", "[callcenter]\n" + "".join(
            f"{q} => {VOICEMAIL_PIN},{q} queue\n" for q in queues))
        self._write("cc_globals.conf", "\n".join([
            f"CC_AGI_URL = agi://{s.agi_host}:{s.agi_port}",
            f"CC_HEARTBEAT_MAX = {s.heartbeat_max_age}",
            f"CC_HOLD_SLICE = {s.hold_slice}",
            f"CC_RECORDINGS_DIR = {self.inst_in_root}/recordings",
            f"CC_FALLBACK_MAX_WAIT = {s.fallback_max_wait}",
            f"CC_MAX_HOLD = {s.max_hold_seconds}",
            f"CC_TRANSFER_RING = {s.transfer_ring_seconds}",
            "",
        ]))

    def _agents_conf(self) -> str:
        """Agents' phones, and supervisors' (which only ever receive listen / whisper / barge calls)."""
        qualify = self.settings.phone_qualify_seconds
        # agents' phones checked (qualify): a phone that stops answering makes its device UNAVAILABLE
        checks = (f"qualify_frequency = {qualify}\nqualify_timeout = {min(3.0, qualify * 0.8):g}\n"
                  if qualify else "")
        phones = [(f"agent{agent_id}", contact, checks) for agent_id, contact in sorted(self.settings.agents.items())]
        phones += [(supervisor_endpoint(user), contact, "")
                   for user, contact in sorted(self.settings.supervisor_phones.items())]
        return "\n".join(f"[{name}](agent-endpoint)\naors = {name}\n\n"
                         f"[{name}]\ntype = aor\ncontact = {contact}\nmax_contacts = 1\n{extra}"
                         for name, contact, extra in phones)

    def _write(self, name: str, body: str) -> None:
        (self.etc_dir / name).write_text("; rendered by callcenter from its settings; do not edit\n" + body)

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 40.0) -> None:
        if not self.root.is_ready():
            raise ProvisionError(
                f"no Asterisk root at {self.root.path}: run `callcenter asterisk install` first")
        self._refuse_if_port_taken()
        self.render()
        proc_dir = self.root.path / "proc"
        if not os.path.ismount(proc_dir):
            subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
            self._mounted_proc = True
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        console = open(self.log_file, "ab")
        log.info("starting Asterisk (%s)", self.conf_in_root)
        self.proc = subprocess.Popen(
            ["chroot", str(self.root.path), "/usr/sbin/asterisk", "-f", "-C", self.conf_in_root],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        console.close()
        try:
            self._wait_fully_booted(timeout)
        except Exception:
            self.stop()
            raise

    def _refuse_if_port_taken(self) -> None:
        with socket.socket() as sock:
            if sock.connect_ex((self.settings.ami_host, self.settings.ami_port)) == 0:
                raise AsteriskStartError(
                    f"something already listens on AMI port {self.settings.ami_port}: "
                    "is another Asterisk (e.g. a `callcenter up`) still running?")

    def _wait_fully_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AsteriskStartError(f"Asterisk exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # The control socket answers once it exists; this returns when all modules are loaded.
                out = self._remote("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                if out.returncode == 0 and "fully booted" in out.stdout.lower():
                    ami_login_check(self.settings)
                    log.info("Asterisk is fully booted")
                    return
                last_error = (out.stdout + out.stderr).strip()[-200:]
            except (OSError, subprocess.TimeoutExpired) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise AsteriskStartError(f"Asterisk not ready after {timeout:.0f} s ({last_error}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one Asterisk CLI command through the instance's control socket (ops and tests only)."""
        return self._remote(command, timeout).stdout

    def _remote(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["chroot", str(self.root.path), "/usr/sbin/asterisk", "-C", self.conf_in_root, "-rx", command],
            capture_output=True, text=True, timeout=timeout,
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.cli("core stop now", timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("Asterisk did not stop in %.0f s; killing it", timeout)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None
        if self._mounted_proc:
            subprocess.run(["umount", "-l", str(self.root.path / "proc")], check=False)
            self._mounted_proc = False


def ami_login_check(settings: Settings, timeout: float = 3.0) -> None:
    """Log in to AMI with a plain socket; raise unless the engine's credentials are accepted."""
    with socket.create_connection((settings.ami_host, settings.ami_port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(
            f"Action: Login\r\nUsername: {settings.ami_user}\r\nSecret: {settings.ami_secret}\r\n\r\n".encode())
        data = b""
        # After the one-line banner comes the Login response: a block ending in a blank line.
        while b"\r\n\r\n" not in data.partition(b"Response:")[2]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        if b"Authentication accepted" not in data:
            raise AsteriskStartError(f"AMI refused the engine's credentials: {data[-200:]!r}")
