"""A throwaway PostgreSQL server for tests and benchmarks.

Owns the whole life of one private cluster: ``initdb`` into a fresh temporary folder, ``pg_ctl
start`` listening on 127.0.0.1 at a free port (its unix socket in the same folder, never in
``/var/run/postgresql``), one database created in it, a SQLAlchemy URL for it
(``postgresql+psycopg://``), and ``pg_ctl stop`` plus removal of the folder at the end. Nothing
outside the folder is touched, so it can run beside a system PostgreSQL and beside other test
runs.

PostgreSQL refuses to run as root, so when this process is root the server programs run as an
unprivileged system user (``postgres``, which Debian's package creates, else ``nobody``) through
``runuser`` and the folder is handed to that user.

Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the data
is thrown away anyway, and loads are several times faster without it.

    with PostgresServer() as server:
        engine = make_engine(server.url)
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import URL

log = logging.getLogger(__name__)

# Debian installs the server programs off PATH, one folder per major version.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres")
# Settings for a server whose data nobody keeps; the listening address and socket folder are
# what keeps it private to this process's folder and loopback.
THROWAWAY_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "logging_collector": "off",
}
# A unix socket path longer than this cannot be bound (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107
PORT_ATTEMPTS = 3


class PostgresServerError(RuntimeError):
    """The throwaway server could not be set up; the message says what is missing or carries
    the server's own output."""


def find_bin_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding initdb, pg_ctl and postgres: ``explicit``, else ``$CALLCENTER_PG_BIN``,
    else the folder of ``initdb`` on PATH, else the newest ``/usr/lib/postgresql/<major>/bin``."""
    candidates: list[Path] = []
    chosen = explicit or os.environ.get("CALLCENTER_PG_BIN")
    if chosen:
        candidates.append(Path(chosen))
    else:
        on_path = shutil.which("initdb")
        if on_path:
            # /usr/local/bin/initdb may be a symlink into Debian's folder: use the real one, so
            # pg_ctl finds the postgres program beside it.
            candidates.append(Path(on_path).resolve().parent)
        candidates.extend(sorted((Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=_major_version, reverse=True))
    for folder in candidates:
        if all((folder / name).is_file() and os.access(folder / name, os.X_OK) for name in REQUIRED_PROGRAMS):
            return folder
    looked = ", ".join(str(c) for c in candidates) or f"PATH and {DEBIAN_BIN_GLOB}"
    raise PostgresServerError(
        f"PostgreSQL server programs ({', '.join(REQUIRED_PROGRAMS)}) not found (looked in {looked}). "
        "Install them with scripts/install (Debian package 'postgresql'), or set CALLCENTER_PG_BIN "
        "to the folder that holds them.")


def _major_version(folder: Path) -> tuple[int, str]:
    version = folder.parent.name  # /usr/lib/postgresql/15/bin -> "15"
    return (int(version), version) if version.isdigit() else (-1, version)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice, from its
    ephemeral range, so never one of the project's fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_user() -> str | None:
    """Who the server programs run as: None (this process's user) unless we are root, which
    PostgreSQL refuses; then ``postgres`` if the system has it, else ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresServerError("running as root, and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


class PostgresServer:
    """One private PostgreSQL cluster with one database; ``start()`` then ``url``, ``stop()``."""

    def __init__(self, *, database: str = "callcenter", user: str = "callcenter",
                 bin_dir: str | os.PathLike[str] | None = None, parent_dir: str | os.PathLike[str] | None = None,
                 settings: dict[str, str] | None = None, start_timeout: float = 60.0):
        self.database = database
        self.user = user  # the database role (superuser of the cluster), not the OS user
        self.bin_dir = find_bin_dir(bin_dir)
        self.parent_dir = parent_dir
        self.settings = {**THROWAWAY_SETTINGS, **(settings or {})}
        self.start_timeout = start_timeout
        self.os_user = server_user()
        self.password = secrets.token_hex(16)
        self.port: int | None = None
        self.base_dir: Path | None = None
        self._running = False

    # ------------------------------------------------------------------ paths
    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_file(self) -> Path:
        return self._base() / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self._base()

    def _base(self) -> Path:
        if self.base_dir is None:
            raise PostgresServerError("the server has not been started")
        return self.base_dir

    @property
    def url(self) -> str:
        """``postgresql+psycopg://user:password@127.0.0.1:port/database``."""
        if not self._running or self.port is None:
            raise PostgresServerError("the server is not running")
        return self.sqlalchemy_url().render_as_string(hide_password=False)

    def sqlalchemy_url(self) -> URL:
        return URL.create("postgresql+psycopg", username=self.user, password=self.password,
                          host="127.0.0.1", port=self.port, database=self.database)

    # ------------------------------------------------------------------ life
    def start(self) -> PostgresServer:
        if self._running:
            return self
        self.base_dir = Path(tempfile.mkdtemp(prefix="callcenter-pg-", dir=self.parent_dir))
        try:
            self._check_socket_path()
            self._hand_over(self.base_dir)
            self._initdb()
            self._start_on_free_port()
            self._create_database()
        except BaseException:
            self.stop()
            raise
        log.info("throwaway PostgreSQL up: %s (data in %s)", self.sqlalchemy_url(), self.base_dir)
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove its folder."""
        if self.base_dir is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            result = self._run([self._program("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w",
                                "-t", str(int(self.start_timeout))], check=False)
            if result.returncode != 0:
                log.warning("pg_ctl stop failed (%s); ending the postmaster by its pid", result.stdout.strip())
                self._kill_postmaster()
        self._running = False
        shutil.rmtree(self.base_dir, ignore_errors=True)
        log.info("throwaway PostgreSQL stopped and removed (%s)", self.base_dir)
        self.base_dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ steps
    def _check_socket_path(self) -> None:
        longest = self.socket_dir / ".s.PGSQL.65535"
        if len(str(longest)) > MAX_SOCKET_PATH:
            raise PostgresServerError(f"temporary folder {self.socket_dir} is too deep for a unix socket "
                                      f"(more than {MAX_SOCKET_PATH} bytes); pass a shorter parent_dir")

    def _hand_over(self, folder: Path) -> None:
        """Give the folder to the server's OS user and check that user can reach it (a parent
        folder closed to others, such as root's home, would make initdb fail obscurely)."""
        if self.os_user is None:
            return
        entry = pwd.getpwnam(self.os_user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        os.chmod(folder, 0o700)
        if self._run(["test", "-w", str(folder)], check=False).returncode != 0:
            raise PostgresServerError(f"user {self.os_user} cannot write to {folder} (a parent folder is closed "
                                      "to it); pass a parent_dir it can reach, e.g. /tmp")

    def _initdb(self) -> None:
        pwfile = self._base() / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            self._run([self._program("initdb"), "-D", str(self.data_dir), "-U", self.user, f"--pwfile={pwfile}",
                       # local socket: only the folder's owner can reach it (0700); TCP needs the password
                       "--auth-local=trust", "--auth-host=scram-sha-256",
                       "-E", "UTF8", "--locale=C", "--no-sync"])
        finally:
            pwfile.unlink(missing_ok=True)
        lines = [f"{name} = {value}" for name, value in self.settings.items()]
        lines.append(f"unix_socket_directories = '{self.socket_dir}'")
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# throwaway server (callcenter.storage.postgres_server)\n" + "\n".join(lines) + "\n")

    def _start_on_free_port(self) -> None:
        # The port is free when chosen but could be taken before the server binds it: try again.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port()
            result = self._run([self._program("pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                                "-w", "-t", str(int(self.start_timeout)), "-o", f"-p {self.port}"], check=False)
            if result.returncode == 0:
                self._running = True
                return
            log.warning("PostgreSQL did not start on port %d (attempt %d): %s", self.port, attempt,
                        result.stdout.strip())
        raise PostgresServerError(f"PostgreSQL did not start after {PORT_ATTEMPTS} attempts; "
                                  f"its log ends with:\n{self._log_tail()}")

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                     dbname="postgres", autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                return
            except psycopg.OperationalError as exc:
                # pg_ctl -w returns once the server accepts connections; this only covers a slow
                # machine between that and the first real session.
                if time.monotonic() > deadline:
                    raise PostgresServerError(f"cannot connect to the new server: {exc}\n{self._log_tail()}") from exc
                time.sleep(0.2)

    # ------------------------------------------------------------------ helpers
    def _program(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = (["runuser", "-u", self.os_user, "--"] if self.os_user is not None else []) + argv
        # PG* variables of the caller (PGDATA, PGPORT, ...) must not steer the private server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(command, check=False, cwd=self.base_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise PostgresServerError(f"{' '.join(argv[:2])} failed ({result.returncode}):\n{result.stdout.strip()}")
        return result

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the server this object started
        except (OSError, ValueError, IndexError) as exc:
            log.warning("could not end the postmaster: %s", exc)
