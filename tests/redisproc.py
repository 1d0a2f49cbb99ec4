"""A redis-server process of the tests' own, on a free loopback port: start, stop, restart.

Tests of outages stop it and start it again; with ``appendonly=True`` the data written before
a (graceful or killed) stop is back after the restart, as in production.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

EXECUTABLE = "redis-server"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortTaken(RuntimeError):
    """redis-server could not bind its port."""


class RedisServer:
    """One ``redis-server``: no RDB snapshots, ``noeviction``, AOF only when asked for."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        directory: Path | None = None,
        executable: str = EXECUTABLE,
    ) -> None:
        self._auto_port = port is None
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="hourglass-redis-"))
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        """A new client (bytes responses) for this server."""
        return redis.Redis.from_url(self.url)

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING (and has loaded its AOF).

        A port picked by this object is picked again if someone took it in the meantime.
        """
        for attempt in range(3):
            try:
                self._start(timeout)
                return
            except PortTaken:
                if not self._auto_port or attempt == 2:
                    raise
                self.port = free_port()

    def _start(self, timeout: float) -> None:
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.executable,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "yes" if self.appendonly else "no"),
            *("--appendfsync", self.appendfsync, "--dir", str(self.directory)),
            *("--maxmemory-policy", "noeviction", "--logfile", "redis.log"),
        ]
        with open(self.directory / "redis.stderr", "ab") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=1.0)
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    self.process = None
                    tail = self._log_tail()
                    if "Address already in use" in tail:
                        raise PortTaken(tail)
                    raise RuntimeError(f"redis-server exited at start: {tail}")
                try:
                    if probe.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop(kill=True)
                    raise RuntimeError(f"redis-server did not answer in {timeout}s")
                time.sleep(0.02)
        finally:
            probe.close()

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM (it flushes its AOF), or SIGKILL to simulate a crash."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self, *, appendonly: bool | None = None, kill: bool = False) -> None:
        """Stop and start again on the same port and directory (optionally switching AOF)."""
        self.stop(kill=kill)
        if appendonly is not None:
            self.appendonly = appendonly
        self.start()

    def close(self) -> None:
        """Stop the server and remove the directory this object created."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _log_tail(self, lines: int = 10) -> str:
        text = ""
        for name in ("redis.stderr", "redis.log"):
            log = self.directory / name
            text += log.read_text(errors="replace") if log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no log)"

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
