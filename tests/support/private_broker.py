"""A private RabbitMQ node for fault tests: killed, frozen and restarted beside the shared broker.

The node has its own name, ports, folders, config file and Erlang cookie, so nothing done to it
reaches the shared node (rabbit@localhost on 127.0.0.1:5672). Every call is synchronous and
bounded by a timeout; async tests may call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

# The Debian wrappers (both are one script) drop from root to the rabbitmq user with `su`.
RABBITMQ_SERVER = "/usr/sbin/rabbitmq-server"
RABBITMQCTL = "/usr/sbin/rabbitmqctl"
RABBITMQ_USER = "rabbitmq"
NAME_PREFIX = "hlfaults"
# The host part the shared node uses too (rabbit@localhost); /etc/hosts maps it to loopback.
NODE_HOST = "localhost"
EPMD_PORT = int(os.environ.get("ERL_EPMD_PORT", "4369"))
# rabbitmqctl's own distribution ports; a node listening there would starve the CLI.
CLI_DIST_PORTS = range(35672, 35683)
START_ATTEMPTS = 3  # a port chosen free may be taken by someone else before the node binds it


class PrivateBroker:
    """One private RabbitMQ node in its own folder under `base_dir`, on free loopback ports.

    `base_dir` must be reachable by the rabbitmq user (the node runs as that user): /tmp is,
    pytest's tmp_path is not (/tmp/pytest-of-root is mode 0700).
    """

    def __init__(self, base_dir: Path) -> None:
        suffix = secrets.token_hex(4)
        self.short_name = f"{NAME_PREFIX}-{suffix}"
        self.node = f"{self.short_name}@{NODE_HOST}"
        self.folder = base_dir / self.short_name
        self.amqp_port = 0
        self.dist_port = 0
        # Our own cookie, given to the node and to every rabbitmqctl call: the wrapper's `su`
        # resets HOME to /var/lib/rabbitmq, so without it the node would share the shared
        # node's cookie; with it, a call that names the wrong node cannot reach the shared one.
        self._cookie = secrets.token_hex(16)
        self._frozen = False
        self._started_once = False

    @property
    def url(self) -> str:
        """The AMQP URL of this node (guest may log in from loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def log_path(self) -> Path:
        """The node's own log file."""
        return self.folder / "log" / f"{self.node}.log"

    @property
    def crash_dump_path(self) -> Path:
        """Where the Erlang VM writes its crash dump if it dies (its first lines say why)."""
        return self.folder / "log" / "erl_crash.dump"

    def __enter__(self) -> PrivateBroker:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, timeout_s: float = 90) -> None:
        """Create the folders, start the node on free ports and wait until it serves AMQP."""
        if self._started_once:
            raise RuntimeError(f"{self.node} was started already; use restart()")
        if os.geteuid() != 0:
            raise RuntimeError("a private broker needs root: the wrappers `su` to rabbitmq")
        self._started_once = True
        atexit.register(self.close)  # a safety net should a test runner skip close()
        self._make_folders()
        deadline = time.monotonic() + timeout_s
        for attempt in range(1, START_ATTEMPTS + 1):
            self.amqp_port, self.dist_port = _free_ports(2)
            self._write_config()
            try:
                self._launch(deadline)
                return
            except BaseException:
                # A node that failed to start must not run on; its folder stays for close().
                with contextlib.suppress(RuntimeError):
                    self._kill_processes()
                # Only a lost port race is worth another try; anything else is reported now.
                if attempt == START_ATTEMPTS or "eaddrinuse" not in self.log_tail(200):
                    raise
                self.log_path.unlink(missing_ok=True)

    def restart(self, timeout_s: float = 90) -> None:
        """Start the node again on the same folders and ports (a node still running is killed)."""
        if self._processes():
            self.kill()
        self._launch(time.monotonic() + timeout_s)

    def kill(self, *, flush_metadata: bool = True) -> None:
        """SIGKILL the node's Erlang VM, as a crash would, and wait until its name is free.

        With `flush_metadata` the node first writes its DETS tables to disk, as it does by itself
        about 0.5 s after a change: RabbitMQ 3.10 killed sooner after declaring a quorum queue
        forgets the queue's Raft identity and restarts it empty, its confirmed messages lost.
        """
        if not self._beam_pids():
            raise RuntimeError(f"{self.node} is not running")
        if flush_metadata and not self._frozen:
            # Best effort: a node that cannot answer is killed all the same.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._ctl("eval", "[dets:sync(Table) || Table <- dets:all()].", timeout_s=15)
        self._kill_processes()

    def stop_app(self, timeout_s: float = 60) -> None:
        """Stop the RabbitMQ application, keeping the Erlang VM (clients are disconnected)."""
        self._ctl("stop_app", timeout_s=timeout_s)

    def start_app(self, timeout_s: float = 90) -> None:
        """Start the RabbitMQ application again and wait until it serves AMQP."""
        deadline = time.monotonic() + timeout_s
        self._ctl("start_app", timeout_s=timeout_s)
        self._await_startup(deadline)

    def ensure_running(self, timeout_s: float = 90) -> None:
        """Make the node serve AMQP again, whatever a test left it in (frozen, stopped, killed)."""
        if self._frozen:
            self.thaw()
        if not self._beam_pids():
            self.restart(timeout_s)
        elif not _answers_amqp(self.amqp_port):
            self.start_app(timeout_s)

    def freeze(self) -> None:
        """SIGSTOP the Erlang VM: the node keeps its sockets open but answers nothing."""
        self._signal_beam(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT the Erlang VM after freeze()."""
        self._signal_beam(signal.SIGCONT)
        self._frozen = False

    def beam_pid(self) -> int:
        """The OS pid of the node's Erlang VM (beam.smp)."""
        pids = self._beam_pids()
        if len(pids) != 1:
            raise RuntimeError(f"{self.node}: expected one beam.smp, found {pids}")
        return pids[0]

    def close(self) -> None:
        """Stop the node (gracefully, else SIGKILL) and delete its folder; safe to call twice."""
        atexit.unregister(self.close)
        try:
            if self._frozen:
                self.thaw()
            if self._beam_pids():
                # A failed or hung graceful stop is fine: SIGKILL below ends whatever is left.
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._ctl("stop", timeout_s=30)
                _wait_until(lambda: not self._processes(), timeout_s=30)
        finally:
            try:
                self._kill_processes()
            finally:
                shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the wrapper's output and the node's log, and why the VM died."""
        parts = []
        for path in (self.folder / "start.log", self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(tail))
        if self.crash_dump_path.exists():
            # A VM that fails before its logging starts (a bad config) says why only here.
            with self.crash_dump_path.open(errors="replace") as dump:
                head = [next(dump, "") for _ in range(3)]
            parts.append(f"--- {self.crash_dump_path}\n" + "".join(head).rstrip())
        return "\n".join(parts) or f"(no log under {self.folder})"

    def _make_folders(self) -> None:
        _check_reachable(self.folder.parent)
        for sub in ("mnesia", "log", "conf.d"):
            (self.folder / sub).mkdir(parents=True)
        (self.folder / "enabled_plugins").write_text("[].\n")

    def _write_config(self) -> None:
        # A config file of its own: the machine's /etc/rabbitmq/rabbitmq.conf pins the listener
        # to 127.0.0.1:5672, and a node that reads it fails there with eaddrinuse.
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
        )
        # The wrapper drops to the rabbitmq user, which must own everything the node writes.
        user = pwd.getpwnam(RABBITMQ_USER)
        for path in [self.folder, *self.folder.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _server_environment(self) -> dict[str, str]:
        return {
            **_clean_environment(),
            # /etc/rabbitmq/rabbitmq-env.conf is still read (epmd on loopback, distribution on
            # loopback); these RABBITMQ_* variables take precedence over its NODENAME.
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "node.pid"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            # Files that need not exist: they keep /etc/rabbitmq/conf.d and advanced.config out.
            "RABBITMQ_CONFIG_FILES": str(self.folder / "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-setcookie {self._cookie}",
            # Else a VM that dies while booting dumps into the wrapper's working folder,
            # /var/lib/rabbitmq: the shared node's home.
            "ERL_CRASH_DUMP": str(self.crash_dump_path),
        }

    def _launch(self, deadline: float) -> None:
        # Output to a file, not a pipe: the detached VM may inherit it and keep a pipe open.
        with (self.folder / "start.log").open("ab") as output:
            launched = subprocess.run(  # noqa: S603 - a fixed system binary
                [RABBITMQ_SERVER, "-detached"],
                env=self._server_environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=max(deadline - time.monotonic(), 1),
                check=False,
            )
        if launched.returncode != 0:
            raise RuntimeError(
                f"rabbitmq-server -detached exited {launched.returncode}:\n{self.log_tail()}"
            )
        self._await_startup(deadline)

    def _await_startup(self, deadline: float) -> None:
        # The AMQP listener opens last, so poll it (cheap) before asking rabbitmqctl, which
        # confirms it is our node that booted; `await_startup` alone fails at once while the
        # node is not yet registered with epmd.
        while time.monotonic() < deadline:
            if _answers_amqp(self.amqp_port):
                try:
                    self._ctl("await_startup", "--timeout", "10", timeout_s=30)
                    return
                except (RuntimeError, subprocess.TimeoutExpired):
                    pass
            if not self._processes():
                raise RuntimeError(f"{self.node} exited while starting:\n{self.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.node} did not start in time:\n{self.log_tail()}")

    def _ctl(self, *args: str, timeout_s: float = 30) -> str:
        """Run rabbitmqctl against this node only (its name and cookie); its stdout."""
        try:
            done = subprocess.run(  # noqa: S603 - a fixed system binary
                [RABBITMQCTL, "-n", self.node, "--erlang-cookie", self._cookie, *args],
                env=_clean_environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            # The timeout killed `su` only; the CLI's shell and VM run in a session of their own
            # and would wait (for a frozen node) until the node is thawed or killed.
            for pid in self._cli_pids():
                _kill_quietly(pid)
            raise
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.node} exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def _processes(self) -> dict[int, str]:
        """Our node's processes (pid: command), found by the node name in their environment."""
        marker = f"RABBITMQ_NODENAME={self.node}".encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found[int(entry.name)] = (entry / "comm").read_text().strip()
            except OSError:
                continue  # gone meanwhile
        return found

    def _cli_pids(self) -> list[int]:
        """rabbitmqctl processes (su, sh, VM) naming our node on their command line."""
        marker = self.node.encode()
        ours = self._processes()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in ours:
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
        return found

    def _beam_pids(self) -> list[int]:
        # Only processes whose environment names our unique node: never the shared node's VM.
        return [pid for pid, command in self._processes().items() if command == "beam.smp"]

    def _signal_beam(self, signum: signal.Signals) -> None:
        os.kill(self.beam_pid(), signum)

    def _kill_processes(self) -> None:
        """SIGKILL the VM first, then its helpers; wait until they are gone and epmd forgot us."""
        for pid in self._beam_pids():
            _kill_quietly(pid)
        _wait_until(lambda: not self._beam_pids(), timeout_s=10)
        # erl_child_setup, inet_gethost and the disk monitor exit on their own; make sure.
        for pid in self._processes():
            _kill_quietly(pid)
        self._frozen = False
        if not _wait_until(lambda: not self._processes(), timeout_s=10):
            raise RuntimeError(f"{self.node}: processes survived SIGKILL: {self._processes()}")
        # epmd drops a name when its VM's connection closes; a name left behind would block
        # the restart ("node name already in use").
        if not _wait_until(lambda: self.short_name not in _epmd_names(), timeout_s=10):
            raise RuntimeError(f"epmd still lists {self.short_name} after its VM died")


def _clean_environment() -> dict[str, str]:
    """Our environment without RABBITMQ_* settings a developer's shell may carry."""
    return {name: value for name, value in os.environ.items() if not name.startswith("RABBITMQ_")}


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now (the kernel picks them; a race stays possible)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            probe = socket.socket()
            sockets.append(probe)
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if port not in CLI_DIST_PORTS:
                ports.append(port)
    finally:
        for probe in sockets:
            probe.close()
    return ports


def _check_reachable(folder: Path) -> None:
    """Fail early, and clearly, if the rabbitmq user cannot reach `folder`."""
    user = pwd.getpwnam(RABBITMQ_USER)
    for ancestor in [folder, *folder.parents]:
        mode = ancestor.stat()
        if mode.st_uid == user.pw_uid:
            allowed = stat.S_IXUSR
        elif mode.st_gid == user.pw_gid or user.pw_name in grp.getgrgid(mode.st_gid).gr_mem:
            allowed = stat.S_IXGRP
        else:
            allowed = stat.S_IXOTH
        if not mode.st_mode & allowed:
            raise ValueError(
                f"the {RABBITMQ_USER} user cannot enter {ancestor}: put the private broker under "
                "a folder it can reach, such as /tmp"
            )


def _answers_amqp(port: int) -> bool:
    """True if an AMQP 0-9-1 server answers the protocol header on the port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.settimeout(2)
            conn.sendall(b"AMQP\x00\x00\x09\x01")
            return conn.recv(1) == b"\x01"
    except OSError:
        return False


def _epmd_names() -> set[str]:
    """The short node names epmd on loopback has registered (NAMES_REQ, no subprocess)."""
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", EPMD_PORT), timeout=2) as conn:
            conn.settimeout(2)
            conn.sendall(b"\x00\x01n")
            while chunk := conn.recv(4096):
                reply += chunk
    except ConnectionRefusedError:
        return set()  # no epmd, so no name registered
    # After a 4-byte port, one "name <name> at port <port>" line per node.
    return {line.split()[1] for line in reply[4:].decode().splitlines() if line.startswith("name ")}


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have exited meanwhile
        os.kill(pid, signal.SIGKILL)


def _wait_until(check: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll `check()` until it is true or `timeout_s` passes; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(poll_s)
    return bool(check())
