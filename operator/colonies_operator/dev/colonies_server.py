"""A private Colonies server for the demo, the benchmarks and the tests: PostgreSQL plus `colonies server start`.

As root, both run inside a network namespace of their own, so the server (which always listens on every
interface) is reachable only through that namespace's loopback and a veth pair to this host. Clients on
the host, and pods of the test cluster, use the namespace's address. Without root, both run on this
host's loopback on free ports.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from colonies_operator.colonies import ColoniesClient, Executor, crypto

# The source checkout (hack/ builds Colonies); this module lives at operator/colonies_operator/dev/.
REPO = Path(__file__).resolve().parents[3]
IN_NAMESPACE_API_PORT = 50080
CLUSTER_POD_CIDR = "10.88.0.0/16"


def colonies_binary() -> str:
    """$COLONIES_BINARY, or Colonies built once by the checkout's hack/build-colonies.sh (cached outside it)."""
    if os.environ.get("COLONIES_BINARY"):
        return os.environ["COLONIES_BINARY"]
    script = REPO / "hack" / "build-colonies.sh"
    if not script.exists():
        raise RuntimeError("no Colonies binary: set COLONIES_BINARY, or run from a source checkout")
    result = subprocess.run([str(script)], check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@dataclasses.dataclass
class Colony:
    """A colony with a user, on a running server."""

    server: "ColoniesServer"
    name: str
    colony_prvkey: str
    user_prvkey: str
    user_name: str

    @property
    def client(self) -> ColoniesClient:
        return self.server.client

    def new_executor(self, executortype: str = "test-executor", name: str | None = None,
                     approve: bool = True) -> tuple[str, str]:
        """Registers (and approves) an executor with a fresh key; returns (name, prvkey)."""
        name = name or f"executor-{secrets.token_hex(4)}"
        prvkey = crypto.generate_prvkey()
        executor = Executor(executorid=crypto.prvkey_to_id(prvkey), executorname=name, executortype=executortype,
                            colonyname=self.name)
        self.client.add_executor(executor, self.colony_prvkey)
        if approve:
            self.client.approve_executor(self.name, name, self.colony_prvkey)
        return name, prvkey

    def cli_env(self) -> dict[str, str]:
        """Environment for the `colonies` CLI, acting as this colony's user."""
        return dict(
            os.environ,
            TZ="UTC",
            LC_CTYPE="UTF-8",
            COLONIES_SERVER_HOST=self.server.host,
            COLONIES_SERVER_PORT=str(self.server.port),
            COLONIES_TLS="false",
            COLONIES_COLONY_NAME=self.name,
            COLONIES_COLONY_PRVKEY=self.colony_prvkey,
            COLONIES_PRVKEY=self.user_prvkey,
        )


class ColoniesServer:
    """One Colonies server and its database. `start()`, `stop()`, `restart()`, `close()`."""

    def __init__(self, *, stale_executor_seconds: int | None = None, cleanup_interval_seconds: int | None = None,
                 use_namespace: bool | None = None) -> None:
        self.binary = colonies_binary()
        self.server_prvkey = crypto.generate_prvkey()
        self.stale_executor_seconds = stale_executor_seconds
        self.cleanup_interval_seconds = cleanup_interval_seconds
        self.use_namespace = (os.geteuid() == 0) if use_namespace is None else use_namespace
        self.workdir = Path(tempfile.mkdtemp(prefix="colonies-test-"))
        self.workdir.chmod(0o755)
        self.log_path = self.workdir / "colonies.log"
        self.netns: str | None = None
        self._server: subprocess.Popen | None = None
        self._db_started = False
        if self.use_namespace:
            self._create_namespace()
            self.host, self.port, self.db_port = self.namespace_address, IN_NAMESPACE_API_PORT, 5432
            self.etcd_ports = (2379, 2380, 2381)
        else:
            self.host, self.port, self.db_port = "127.0.0.1", _free_port(), _free_port()
            self.etcd_ports = (_free_port(), _free_port(), _free_port())
        self.client = ColoniesClient(self.host, self.port)
        atexit.register(self.close)

    # -- network namespace --------------------------------------------------------------------------

    @staticmethod
    def _sweep_abandoned_namespaces() -> None:
        """Removes the namespaces of test servers whose run was killed (nothing runs in them any more)."""
        for line in _run(["ip", "netns", "list"]).stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith("colonies-test-") and not _run(["ip", "netns", "pids", name]).stdout.strip():
                subprocess.run(["ip", "link", "del", f"cot{name.rsplit('-', 1)[1]}h"], stderr=subprocess.DEVNULL)
                subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)

    def _create_namespace(self) -> None:
        self._sweep_abandoned_namespaces()
        # An index is free when no namespace, veth or address of any Colonies server here uses it.
        namespaces = {line.split()[0] for line in _run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()}
        links = _run(["ip", "-o", "link", "show"]).stdout
        addresses = _run(["ip", "-o", "-4", "addr", "show"]).stdout
        index = next(i for i in range(1, 250) if not any(n.endswith(f"-{i}") for n in namespaces)
                     and f" cot{i}h" not in links and f" 10.89.{i}.1/" not in addresses)
        self.netns = f"colonies-test-{index}"
        host_if, ns_if = f"cot{index}h", f"cot{index}n"
        self.host_address, self.namespace_address = f"10.89.{index}.1", f"10.89.{index}.2"
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if])
        _run(["ip", "link", "set", ns_if, "netns", self.netns])
        _run(["ip", "addr", "add", f"{self.host_address}/24", "dev", host_if])
        _run(["ip", "link", "set", host_if, "up"])
        in_ns = ["ip", "netns", "exec", self.netns]
        _run(in_ns + ["ip", "link", "set", "lo", "up"])
        _run(in_ns + ["ip", "addr", "add", f"{self.namespace_address}/24", "dev", ns_if])
        _run(in_ns + ["ip", "link", "set", ns_if, "up"])
        # Replies may go back to the test cluster's pods, and nowhere else: no default route.
        _run(in_ns + ["ip", "route", "add", CLUSTER_POD_CIDR, "via", self.host_address])
        self._host_if = host_if

    def _in_namespace(self, cmd: list[str]) -> list[str]:
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + cmd

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> "ColoniesServer":
        if not self._db_started:
            self._start_database()
        self._start_server(initdb=not (self.workdir / "etcd").exists())
        return self

    def _start_database(self) -> None:
        pgdata, sockets = self.workdir / "pgdata", self.workdir / "pgsock"
        sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(sockets, "postgres")
        bindir = _postgres_bindir()
        _run(self._as_postgres([f"{bindir}/initdb", "-D", str(pgdata), "-A", "trust", "-U", "postgres", "--no-sync"]))
        options = f"-c listen_addresses=127.0.0.1 -c port={self.db_port} -c unix_socket_directories={sockets} -c fsync=off"
        _run(self._in_namespace(self._as_postgres(
            [f"{bindir}/pg_ctl", "-D", str(pgdata), "-l", str(self.workdir / "postgres.log"), "-w", "-o", options, "start"])))
        self._db_started = True

    def _start_server(self, *, initdb: bool) -> None:
        client_port, peer_port, relay_port = self.etcd_ports
        env = dict(
            os.environ,
            TZ="UTC",
            LC_CTYPE="UTF-8",
            COLONIES_DB_HOST="127.0.0.1",
            COLONIES_DB_PORT=str(self.db_port),
            COLONIES_DB_USER="postgres",
            COLONIES_DB_PASSWORD="unused-trust-auth",
            COLONIES_DB_TIMESCALEDB="false",
            COLONIES_SERVER_ID=crypto.prvkey_to_id(self.server_prvkey),
            COLONIES_EXCLUSIVE_ASSIGN="true",
            COLONIES_ALLOW_EXECUTOR_REREGISTER="true",
            COLONIES_VERBOSE="false",
        )
        if self.stale_executor_seconds is not None:
            env["COLONIES_STALE_EXECUTOR_DURATION"] = str(self.stale_executor_seconds)
        if self.cleanup_interval_seconds is not None:
            env["COLONIES_CLEANUP_INTERVAL"] = str(self.cleanup_interval_seconds)
        cmd = [self.binary, "server", "start", "--insecure", "--port", str(self.port),
               "--etcdname", "server1", "--etcdhost", "127.0.0.1", "--etcdclientport", str(client_port),
               "--etcdpeerport", str(peer_port), "--relayport", str(relay_port),
               "--initial-cluster", f"server1=127.0.0.1:{peer_port}:{relay_port}:{self.port}",
               "--etcddatadir", str(self.workdir / "etcd")]
        if initdb:
            cmd.append("--initdb")
        log = open(self.log_path, "ab")
        self._server = subprocess.Popen(self._in_namespace(cmd), env=env, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.client.health():
            if self._server.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.close()
                raise RuntimeError(f"the Colonies server did not become healthy; its log ends with:\n{tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stops the server process (the database keeps running)."""
        if self._server and self._server.poll() is None:
            os.killpg(self._server.pid, signal.SIGTERM)
            try:
                self._server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self._server.pid, signal.SIGKILL)
                self._server.wait()
        self._server = None

    def restart(self) -> None:
        self.stop()
        self._start_server(initdb=False)

    def close(self) -> None:
        """Stops everything and removes every trace (idempotent)."""
        self.stop()
        if self._db_started:
            subprocess.run(self._in_namespace(self._as_postgres(
                [f"{_postgres_bindir()}/pg_ctl", "-D", str(self.workdir / "pgdata"), "-m", "immediate", "-w", "stop"])),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._db_started = False
        if self.netns:
            subprocess.run(["ip", "link", "del", self._host_if], stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "netns", "del", self.netns], stderr=subprocess.DEVNULL)
            self.netns = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- colonies and users ------------------------------------------------------------------------------

    def new_colony(self) -> Colony:
        """A fresh colony with one user, all with fresh random keys."""
        name = f"colony-{secrets.token_hex(4)}"
        colony_prvkey, user_prvkey = crypto.generate_prvkey(), crypto.generate_prvkey()
        self.client.add_colony(crypto.prvkey_to_id(colony_prvkey), name, self.server_prvkey)
        user_name = f"user-{secrets.token_hex(3)}"
        self.client.add_user(name, crypto.prvkey_to_id(user_prvkey), user_name, colony_prvkey)
        return Colony(self, name, colony_prvkey, user_prvkey, user_name)


def _postgres_bindir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return str(found[-1].parent)
    initdb = shutil.which("initdb")
    if initdb:
        return str(Path(initdb).resolve().parent)
    raise RuntimeError("PostgreSQL is not installed: run `make deps` (Debian package postgresql)")


@contextlib.contextmanager
def private_colonies_server(**kwargs) -> Iterator[ColoniesServer]:
    """A server of its own, for tests that restart it or change its settings."""
    server = ColoniesServer(**kwargs).start()
    try:
        yield server
    finally:
        server.close()
