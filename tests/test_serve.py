"""`mailer serve --workers N`: every worker listens on a socket of its own on the shared port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.smtp_server import free_port


def listeners(port: int) -> int:
    """Listening TCP sockets on 127.0.0.1:port, from the kernel's table."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "0A")


def workers_of(pid: int) -> list[int]:
    """The worker processes of the supervisor `pid` (not its multiprocessing resource tracker)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == pid
            and b"spawn_main" in _cmdline(int(p))]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None


def wait_until(condition, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/privacy", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def serve_command(tmp_path: Path, port: int) -> dict:
    """Keyword arguments for subprocess: `mailer serve --workers 2` on a new SQLite database."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
           "MAILER_ROOT": str(tmp_path), "MAILER_DATABASE_URL": f"sqlite:///{tmp_path}/m.db",
           "MAILER_SECRET_KEY": "test-secret-key-0123456789", "PYTHONPATH": str(REPO)}
    return {"args": [sys.executable, "-m", "mailer", "serve", "--port", str(port), "--workers",
                     "2"], "env": env, "cwd": tmp_path}


@pytest.mark.lowest
def test_a_port_in_use_is_one_clear_line(tmp_path):
    """Even when the listener there shares its port (another `mailer serve --workers`)."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = subprocess.Popen(**serve_command(tmp_path, taken.getsockname()[1]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, errors = server.communicate(timeout=60)
        finally:
            if server.poll() is None:  # it started after all: stop it with its workers
                server.terminate()
                server.wait(30)
    assert server.returncode != 0 and "cannot listen on 127.0.0.1:" in errors
    assert "Traceback" not in errors


@pytest.mark.lowest
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_each_worker_has_its_own_socket_also_after_a_restart(tmp_path):
    port = free_port()
    server = subprocess.Popen(**serve_command(tmp_path, port), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listeners(port) == 2 and answers(port))
        seen = set(workers_of(server.pid))
        assert len(seen) == 2
        victim = min(seen)
        for _ in range(2):  # a worker, then the worker that replaced it
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(set(workers_of(server.pid)) - seen) == 1)
            (victim,) = set(workers_of(server.pid)) - seen
            seen.add(victim)
            # The dead worker's socket is gone, not left open in the supervisor, where the
            # kernel would keep queueing new connections on it with nobody accepting them.
            wait_until(lambda: listeners(port) == 2 and answers(port))
        assert all(answers(port) for _ in range(10))
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_workers_started_on_a_signal_leave_no_socket_in_the_supervisor(tmp_path):
    """SIGTTIN adds a worker with a socket of its own, SIGTTOU stops it, SIGHUP replaces them
    all; the supervisor keeps no copy of a socket it handed out, which would go on queueing
    connections nobody accepts."""
    port = free_port()
    server = subprocess.Popen(**serve_command(tmp_path, port), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listeners(port) == 2 and answers(port))
        server.send_signal(signal.SIGTTIN)
        wait_until(lambda: len(workers_of(server.pid)) == 3 and listeners(port) == 3)
        server.send_signal(signal.SIGTTOU)
        wait_until(lambda: len(workers_of(server.pid)) == 2)
        wait_until(lambda: listeners(port) == 2, seconds=10)
        before = set(workers_of(server.pid))
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: len(set(workers_of(server.pid)) - before) == 2)
        wait_until(lambda: listeners(port) == 2 and answers(port), seconds=10)
        assert all(answers(port) for _ in range(10))
    finally:
        server.terminate()
        server.wait(30)
