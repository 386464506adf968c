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
import json
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

from colonies_operator.colonies import Executor, crypto

from devtools.colonies_client import ColoniesClient

# The source checkout (hack/ builds Colonies); this module lives at devtools/.
REPO = Path(__file__).resolve().parents[1]
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
    """One Colonies server and its database. `start()`, `stop()`, `restart()`, `close()`.

    With `state_dir`, the server is persistent (the dev environment of `make up`): its database, keys, ports and
    network namespace are kept in that directory and outlive this process; a later ColoniesServer with the same
    `state_dir` finds them and starts what is not running. `close()` removes it all.
    """

    def __init__(self, *, stale_executor_seconds: int | None = None, cleanup_interval_seconds: int | None = None,
                 use_namespace: bool | None = None, state_dir: Path | None = None) -> None:
        self.binary = colonies_binary()
        self.stale_executor_seconds = stale_executor_seconds
        self.cleanup_interval_seconds = cleanup_interval_seconds
        self.use_namespace = (os.geteuid() == 0) if use_namespace is None else use_namespace
        self.persistent = state_dir is not None
        self.state_dir = state_dir
        state: dict = {}
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            state = self._load_state()
        # The data lives where the postgres user can reach it (as root, PostgreSQL runs as postgres, and a home
        # directory is usually closed to it); a persistent server's keys stay in state_dir.
        if state.get("workdir") and Path(state["workdir"]).is_dir():
            self.workdir = Path(state["workdir"])
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="colonies-dev-" if self.persistent else "colonies-test-"))
        self.workdir.chmod(0o755)
        self.server_prvkey = state.get("server_prvkey") or crypto.generate_prvkey()
        self.log_path = self.workdir / "colonies.log"
        self.netns: str | None = None
        self._server: subprocess.Popen | None = None
        self._db_started = False
        if self.use_namespace:
            self._create_namespace(state.get("netns_index"))
            self.host, self.port, self.db_port = self.namespace_address, IN_NAMESPACE_API_PORT, 5432
            self.etcd_ports = (2379, 2380, 2381)
        elif state.get("port"):
            self.host, self.port, self.db_port = "127.0.0.1", state["port"], state["db_port"]
            self.etcd_ports = tuple(state["etcd_ports"])
        else:
            self.host, self.port, self.db_port = "127.0.0.1", _free_port(), _free_port()
            self.etcd_ports = (_free_port(), _free_port(), _free_port())
        self.client = ColoniesClient(self.host, self.port)
        if self.persistent:
            self._save_state()
        else:
            atexit.register(self.close)

    # -- persistent state (dev environment) -------------------------------------------------------------

    @property
    def _state_path(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir / "server.json"

    def _load_state(self) -> dict:
        try:
            return json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, **extra) -> None:
        state = dict(self._load_state(), server_prvkey=self.server_prvkey, port=self.port, db_port=self.db_port,
                     etcd_ports=list(self.etcd_ports), workdir=str(self.workdir), **extra)
        if self.netns:
            state["netns_index"] = int(self.netns.rsplit("-", 1)[1])
        fd = os.open(self._state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)

    def state(self) -> dict:
        """What the persistent server keeps besides its own settings (e.g. the dev colony's keys)."""
        return self._load_state()

    def save(self, **values) -> None:
        self._save_state(**values)

    # -- network namespace --------------------------------------------------------------------------

    @staticmethod
    def _sweep_abandoned_namespaces() -> None:
        """Removes the namespaces of test servers whose run was killed (nothing runs in them any more)."""
        for line in _run(["ip", "netns", "list"]).stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith("colonies-test-") and not _run(["ip", "netns", "pids", name]).stdout.strip():
                subprocess.run(["ip", "link", "del", f"cot{name.rsplit('-', 1)[1]}h"], stderr=subprocess.DEVNULL)
                subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)

    def _create_namespace(self, index: int | None = None) -> None:
        self._sweep_abandoned_namespaces()
        # An index is free when no namespace, veth or address of any Colonies server here uses it. Test servers
        # are colonies-test-<i>; persistent (dev) ones colonies-dev-<i>, which no sweep removes, and which a
        # later run finds again by the index it recorded.
        existing = {line.split()[0] for line in _run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()}
        prefix = "colonies-dev" if self.persistent else "colonies-test"
        if index is None or f"{prefix}-{index}" not in existing:
            links = _run(["ip", "-o", "link", "show"]).stdout
            addresses = _run(["ip", "-o", "-4", "addr", "show"]).stdout

            def free(i: int) -> bool:
                return (not any(n.endswith(f"-{i}") for n in existing) and f" cot{i}h" not in links
                        and f" cod{i}h" not in links and f" 10.89.{i}.1/" not in addresses)
            if index is None or not free(index):
                # Persistent servers count down from the top, out of the way of test servers.
                candidates = range(249, 0, -1) if self.persistent else range(1, 250)
                index = next(i for i in candidates if free(i))
        self.netns = f"{prefix}-{index}"
        link = "cod" if self.persistent else "cot"  # dev links are never taken for an abandoned test server's
        host_if, ns_if = f"{link}{index}h", f"{link}{index}n"
        self.host_address, self.namespace_address = f"10.89.{index}.1", f"10.89.{index}.2"
        self._host_if = host_if
        if self.netns in existing:
            return  # a persistent server's namespace, set up by an earlier run
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

    def _in_namespace(self, cmd: list[str]) -> list[str]:
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + cmd

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> "ColoniesServer":
        """Starts the database and the server (a persistent server: whichever of them is not running)."""
        if self.persistent and self.client.health():
            self._db_started = True
            return self
        if self.persistent:
            self._stop_recorded_server()  # running but unreachable, if at all
            if self.netns and subprocess.run(["ip", "link", "show", self._host_if], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL).returncode != 0:
                # The namespace lost its link to this host: set it up again (its database is stopped first).
                if self._database_running():
                    _run(self._in_namespace(self._as_postgres([f"{_postgres_bindir()}/pg_ctl", "-D",
                                                               str(self.workdir / "pgdata"), "-m", "fast", "-w",
                                                               "stop"])))
                subprocess.run(["ip", "netns", "del", self.netns], stderr=subprocess.DEVNULL)
                self._create_namespace(int(self.netns.rsplit("-", 1)[1]))
                self.host = self.namespace_address
                self.client = ColoniesClient(self.host, self.port)
                self._save_state()
        if not self._db_started:
            self._start_database()
        self._start_server(initdb=not (self.workdir / "etcd").exists())
        return self

    def _database_running(self) -> bool:
        pgdata = self.workdir / "pgdata"
        return pgdata.exists() and subprocess.run(
            self._as_postgres([f"{_postgres_bindir()}/pg_ctl", "-D", str(pgdata), "status"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def _start_database(self) -> None:
        pgdata, sockets = self.workdir / "pgdata", self.workdir / "pgsock"
        sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(sockets, "postgres")
        bindir = _postgres_bindir()
        if self._database_running():
            self._db_started = True
            return
        if not (pgdata / "PG_VERSION").exists():
            _run(self._as_postgres([f"{bindir}/initdb", "-D", str(pgdata), "-A", "trust", "-U", "postgres",
                                    "--no-sync"]))
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
        (self.workdir / "server.pid").write_text(str(self._server.pid))
        deadline = time.monotonic() + 60
        while not self.client.health():
            if self._server.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.close()
                raise RuntimeError(f"the Colonies server did not become healthy; its log ends with:\n{tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stops the server process (the database keeps running)."""
        if self._server is None and self.persistent:
            self._stop_recorded_server()
        if self._server and self._server.poll() is None:
            os.killpg(self._server.pid, signal.SIGTERM)
            try:
                self._server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self._server.pid, signal.SIGKILL)
                self._server.wait()
        self._server = None

    def _stop_recorded_server(self) -> None:
        """A persistent server started by an earlier run: its process group, by the PID it recorded."""
        try:
            pid = int((self.workdir / "server.pid").read_text())
            os.killpg(pid, signal.SIGTERM)
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except OSError:
                return
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self._start_server(initdb=False)

    def close(self) -> None:
        """Stops everything and removes every trace (idempotent)."""
        self.stop()
        if self.persistent and (self.workdir / "pgdata").exists():
            self._db_started = True
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
        if self.persistent and self.state_dir is not None:
            self._state_path.unlink(missing_ok=True)

    # -- colonies and users ------------------------------------------------------------------------------

    def new_colony(self, name: str | None = None) -> Colony:
        """A fresh colony (named `name`, else at random) with one user, all with fresh random keys."""
        name = name or f"colony-{secrets.token_hex(4)}"
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
