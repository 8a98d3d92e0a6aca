"""A throwaway PostgreSQL cluster for the tests: Debian's PostgreSQL, run as the `postgres` user
(the server refuses root) in a temporary folder, on a free loopback port, trusting local
connections. `.ci/run` starts one with `python -m tests.postgres start DIR` and exports the URL
it prints as $FLUX_TEST_POSTGRES_URL; without that variable the test session starts its own
when it can (and skips the PostgreSQL cases, saying why, when it cannot; with
$FLUX_TEST_REQUIRE_POSTGRES=1, as in CI, it fails instead)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

URL_ENV = "FLUX_TEST_POSTGRES_URL"
REQUIRE_ENV = "FLUX_TEST_REQUIRE_POSTGRES"


class Unavailable(Exception):
    """No PostgreSQL server can be started here."""


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or \
        ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise Unavailable(f"{name} not found (Debian: apt install postgresql)")
    return found[-1]


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() != 0:
        return list(command)  # run as ourselves: the server only refuses root
    if not shutil.which("runuser"):
        raise Unavailable("running as root without runuser")
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(folder: Path, *, durable: bool = False) -> str:
    """Start a cluster with its data in `folder`; returns its URL. Not `durable` (the tests):
    no fsync, as nothing in it needs to survive a power cut; `durable` (the benchmark): the
    server's own defaults, as a real deployment runs."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    try:
        subprocess.run(_as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust",
                                    "-U", "postgres", "-E", "UTF8"), **run)
        subprocess.run(_as_postgres(
            _bin("pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
            f"-p {port} -k {folder} -h 127.0.0.1 -c max_connections=300" + (
                "" if durable else " -c fsync=off -c synchronous_commit=off"
                " -c full_page_writes=off"), "start"), **run)
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"cannot start PostgreSQL: {exc.stderr.decode()[-500:]}") from None
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def create_database(server: str, prefix: str = "t") -> str:
    """A new, empty database on `server`; returns its URL."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(url: str) -> None:
    import asyncpg

    server, name = url.rsplit("/", 1)
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def stop(folder: Path) -> None:
    subprocess.run(_as_postgres(_bin("pg_ctl"), "-D", str(folder / "data"), "-m", "immediate",
                                "stop"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":  # python -m tests.postgres start|stop DIR
    action, where = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        try:
            print(start(where))
        except Unavailable as exc:
            print(f"PostgreSQL for the tests: {exc}", file=sys.stderr)
            sys.exit(1)
    else:
        stop(where)
