"""pytest plugin: a throw-away PostgreSQL server on loopback, for the state store's tests.

Debian's ``postgresql`` package provides the binaries (``scripts/test`` installs it when
missing). The fixture ``postgres_url`` (session) runs ``initdb`` in a temporary directory,
starts the server on a free port with trust authentication on 127.0.0.1 only, and stops and
deletes it at the end. As root, the server runs as the ``postgres`` system user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "fhircml"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if candidates:
        return candidates[-1]
    pytest.fail(
        f"PostgreSQL's {name} is not installed: run ./scripts/test (it installs Debian's "
        "postgresql package) or `apt-get install postgresql`",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://fhircml@127.0.0.1:PORT/postgres`` of a fresh server."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="fhir-cml-pg-"))
    data, sockets, logfile = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str) -> None:
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            log = logfile.read_text() if logfile.exists() else ""
            pytest.fail(
                f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}{log}", pytrace=False
            )

    run(initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(logfile), "-w", "-t", "60", "start")
    try:
        yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
