"""A throwaway PostgreSQL cluster for tests: initdb in a temp folder, unix socket only, stopped and deleted after.

``PostgresCluster()`` is a context manager; ``cluster.new_database()`` returns the SQLAlchemy URL of a fresh,
empty database on it. The server listens on no TCP address (``listen_addresses=''``): only on a unix socket
in its own temp folder, on a port number chosen free so that nothing else's socket name collides.

Binaries: Debian's ``postgresql`` (``/usr/lib/postgresql/<ver>/bin``). When they are missing and we run as
root with apt-get available (a clean CI machine), they are installed with apt (first writing
``/etc/postgresql-common/createcluster.conf`` with ``create_main_cluster = false`` if there is none, so the
package does not create and start a system cluster); otherwise :class:`PostgresUnavailable` says what to do.
The server refuses to run as root, so as root every server command runs as the ``postgres`` user
(``runuser -u postgres``), which the package creates.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

APT_PACKAGE = "postgresql"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries and no way to install them here."""


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).resolve().parent if exe else None


def install_with_apt(timeout_s: float = 900.0) -> float:
    """``apt-get install -y postgresql`` as root without creating a system cluster; returns the seconds it took."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable("PostgreSQL server binaries not found (initdb); install Debian's 'postgresql' "
                                  "package (apt-get install postgresql) or run the tests as root on Debian")
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    t0 = time.monotonic()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "-o", "Dpkg::Options::=--force-confold", APT_PACKAGE]
    for cmd in (["apt-get", "update", "-qq"], install):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if r.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return time.monotonic() - t0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A private PostgreSQL cluster for the duration of a ``with`` block."""

    def __init__(self, install: bool = True) -> None:
        bindir = _bindir()
        if bindir is None:
            if not install:
                raise PostgresUnavailable("PostgreSQL server binaries not found (initdb)")
            install_with_apt()
            bindir = _bindir()
            if bindir is None:
                raise PostgresUnavailable(f"apt-get install {APT_PACKAGE} finished but no initdb was found")
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.dir: Path | None = None
        self.port = _free_port()
        self._n = 0

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            log = ""
            if self.dir is not None and (self.dir / "server.log").exists():
                log = (self.dir / "server.log").read_text(errors="replace")[-1500:]
            raise PostgresUnavailable(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-800:]}\n{log}")
        return r

    def __enter__(self) -> "PostgresCluster":
        self.dir = Path(tempfile.mkdtemp(prefix="exo-pg-"))
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        try:
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale",
                      "--no-sync")
            opts = f"-k {self.dir} -p {self.port} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
            self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                      "start")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` over the cluster's unix socket."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port={self.port}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        self._n += 1
        name = f"exo_test_{self._n}"
        with psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __exit__(self, *exc) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
