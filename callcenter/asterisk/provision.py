"""Build, once, a small Debian sid root folder with Asterisk 22 in it, and reuse it afterwards.

Debian 12 has no Asterisk package and installing sid packages into the host would replace libc, so
Asterisk lives in a debootstrapped root outside the git tree (README.md, "Set-up"). The build goes
into a temporary sibling folder and is renamed into place only when complete, so an interrupted
install never leaves a half-built root that a later run would trust.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(os.environ.get("CALLCENTER_ASTERISK_ROOT", "/var/cache/callcenter/asterisk-root"))
MIRROR = os.environ.get("CALLCENTER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Packages installed inside the root: Asterisk, English prompts and the music on hold files.
PACKAGES = ("asterisk", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm")
# Bumped whenever PACKAGES or the build steps change, so an older cached root is rebuilt.
ROOT_FORMAT = "1"
MARKER = ".callcenter-root"
# The sid mirror is a snapshot whose Release file has expired; apt refuses it without this.
APT_OPTS = ("-o", "Acquire::Check-Valid-Until=false")


# manager.conf's `eventfilter(name(...))` form exists from 22.1 (and 21.6, 20.11); older builds
# would silently ignore our filters.
MIN_VERSION = (22, 1)


def asterisk_version(root: Path) -> tuple[int, ...]:
    out = subprocess.run(["chroot", str(root), "/usr/sbin/asterisk", "-V"], capture_output=True, text=True)
    match = re.search(r"Asterisk (\d+)\.(\d+)", out.stdout)
    if match is None:
        raise ProvisionError(f"cannot read the Asterisk version from {out.stdout!r} {out.stderr!r}")
    return int(match.group(1)), int(match.group(2))


class ProvisionError(RuntimeError):
    """The Asterisk root could not be built."""


@dataclass(frozen=True)
class AsteriskRoot:
    path: Path

    @property
    def binary(self) -> Path:
        return self.path / "usr/sbin/asterisk"

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    def is_ready(self) -> bool:
        return (
            self.binary.exists()
            and self.marker.exists()
            and self.marker.read_text().strip() == ROOT_FORMAT
        )


def _run(cmd: list[str], what: str) -> None:
    log.info("%s: %s", what, " ".join(cmd))
    started = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise ProvisionError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    log.info("%s took %.0f s", what, time.monotonic() - started)


def install(root_path: Path = DEFAULT_ROOT, *, force: bool = False, progress=print) -> AsteriskRoot:
    """Make sure an Asterisk root exists at ``root_path``; build it if it does not. Idempotent."""
    root = AsteriskRoot(root_path)
    root_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root_path.parent / (root_path.name + ".lock")
    with open(lock_path, "w") as lock:
        # Two concurrent installs (e.g. a demo and a test run) wait for each other instead of
        # debootstrapping into the same folder.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root.is_ready() and not force:
            progress(f"Asterisk root already provisioned at {root_path}")
            return root
        if shutil.which("debootstrap") is None:
            raise ProvisionError("debootstrap is not installed: run `apt-get install -y debootstrap` first")
        staging = root_path.with_name(root_path.name + ".building")
        if staging.exists():
            _unmount_proc(staging)
            shutil.rmtree(staging)
        started = time.monotonic()
        progress(f"[1/3] debootstrap Debian sid into {staging} (about 30 s)")
        _run(
            ["debootstrap", "--variant=minbase", "--include=ca-certificates", "sid", str(staging), MIRROR],
            "debootstrap",
        )
        progress("[2/3] apt-get update inside the root")
        _run(["chroot", str(staging), "apt-get", *APT_OPTS, "update"], "apt-get update")
        progress(f"[3/3] install {' '.join(PACKAGES)} (about 20 s)")
        _run(
            ["chroot", str(staging), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *APT_OPTS,
             "install", "-y", "--no-install-recommends", *PACKAGES],
            "apt-get install asterisk",
        )
        _run(["chroot", str(staging), "apt-get", "clean"], "apt-get clean")
        version = asterisk_version(staging)
        if version < MIN_VERSION:
            raise ProvisionError(
                f"Debian sid gave Asterisk {'.'.join(map(str, version))}; callcenter needs "
                f"{'.'.join(map(str, MIN_VERSION))} or newer (AMI event filters by name)")
        progress(f"Asterisk {'.'.join(map(str, version))} installed")
        (staging / MARKER).write_text(ROOT_FORMAT + "\n")
        if root_path.exists():
            _unmount_proc(root_path)
            shutil.rmtree(root_path)
        staging.rename(root_path)
        progress(f"Asterisk root ready at {root_path} in {time.monotonic() - started:.0f} s")
        return root


def _unmount_proc(path: Path) -> None:
    proc = path / "proc"
    if os.path.ismount(proc):
        subprocess.run(["umount", "-l", str(proc)], check=False)
