"""Shared fixtures: configs on disk, the daemon in-process and as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from daemon.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


def write_config(directory: Path, **control: object) -> Path:
    extra = "".join(f"{key} = {value!r}\n" for key, value in control.items())
    path = directory / "zaiko.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "state"\n[control]\nlisten = "127.0.0.1:0"\n{extra}'
        f'[mail]\nmaildir_root = "mail"\n'
    )
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


class DaemonProcess:
    """The real daemon (``zaiko daemon``) as a child process, ready when systemd would be told."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: socket.socket | None = None
        self.log = config_path.parent / "daemon.log"

    def start(self) -> None:
        notify_path = self.config_path.parent / "notify.sock"
        notify_path.unlink(missing_ok=True)
        if self.notify is not None:
            self.notify.close()
        # kept open while the daemon runs, as systemd does: it also says STATUS= lines
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify_path))
        self.notify.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "--config", str(self.config_path), "daemon"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # readiness is the daemon's own READY=1, the event systemd waits for
        self.wait_for_notify(lambda message: "READY=1" in message)

    def wait_for_notify(self, wanted: Callable[[str], bool]) -> str:
        """The next notify message ``wanted`` accepts (blocks; 30 s at most per message)."""
        assert self.notify is not None
        while not wanted(message := self.notify.recv(4096).decode()):
            pass
        return message

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "cli", "--config", str(self.config_path), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"zaiko {' '.join(args)} failed: {result.stderr}")
        return result

    def stop(self, sig: int = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture
def daemon_process(config_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(config_path)
    daemon.start()
    try:
        yield daemon
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        if daemon.notify is not None:
            daemon.notify.close()


@asynccontextmanager
async def running_daemon(config: Config, **kwargs: object) -> AsyncIterator[tuple[str, int]]:
    """The daemon in this process (same code as ``zaiko daemon``), cancelled at exit."""
    from daemon.main import run_daemon

    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            lambda task_status: run_daemon(config, task_status=task_status, **kwargs)
        )
        try:
            yield address
        finally:
            nursery.cancel_scope.cancel()
