"""``make demo`` on its failure paths: one line, and no process of it left behind.

The demo's ports are fixed (conf/*.example.toml), so another demo on this machine may hold
them: these tests hold what they need and accept the simulator failing first.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEMO_PORT = 8765  # conf/zaiko.example.toml's [control] listen


def run_demo(tmp_path: Path) -> subprocess.Popen[str]:
    # TMPDIR puts the demo's state under tmp_path: every process it starts names it
    return subprocess.Popen(
        [sys.executable, "demo/demo.py"],
        cwd=ROOT,
        env=dict(os.environ, TMPDIR=str(tmp_path), DEMO_SECONDS="5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def processes_naming(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        if str(path) in text:
            found.append(text)
    return found


@contextmanager
def port_taken(port: int) -> Iterator[None]:
    with socket.socket() as taken:
        # as servers do: connections of an earlier run in TIME_WAIT do not hold the port
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", port))
            taken.listen()
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE  # someone else holds it: as good
        yield


def test_demo_with_its_daemon_port_taken_says_so_in_one_line(tmp_path: Path) -> None:
    with port_taken(DEMO_PORT):
        demo = run_demo(tmp_path)
        stdout, stderr = demo.communicate(timeout=120)
    assert demo.returncode == 1, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo: "), stderr
    assert "already in use" in lines[0]
    assert processes_naming(tmp_path) == []


def test_ctrl_c_while_the_demo_starts_leaves_nothing_running(tmp_path: Path) -> None:
    demo = run_demo(tmp_path)
    assert demo.stdout is not None
    for line in demo.stdout:
        if "starting the zaiko daemon" in line:
            demo.send_signal(signal.SIGINT)  # the demo only, not its children
            break
    stdout, stderr = demo.communicate(timeout=120)
    assert demo.returncode in (130, 1, 0), (stdout, stderr)  # 1: a port was taken
    assert len(stderr.strip().splitlines()) <= 1, stderr
    assert processes_naming(tmp_path) == []
    if demo.returncode == 130:
        assert list(tmp_path.iterdir()) == []  # nothing failed: its state is removed


@pytest.mark.parametrize("ended_by", ["q", "DEMO_SECONDS"])
def test_the_demo_opens_the_tui_and_ending_it_stops_everything(
    tmp_path: Path, ended_by: str
) -> None:
    """On a terminal (a pty here, 120×40) ``make demo`` ends in the operator's TUI; its q,
    or the demo's end (DEMO_SECONDS: the TUI is sent SIGTERM), stops every process the demo
    started, leaves the terminal as it was and the demo ends cleanly."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seconds = "600" if ended_by == "q" else "20"
    env = dict(os.environ, TMPDIR=str(tmp_path), DEMO_SECONDS=seconds, TERM="xterm-256color")
    env.pop("DEMO_HEADLESS", None)
    demo = subprocess.Popen(
        [sys.executable, "demo/demo.py"],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,  # Textual draws on stderr
        start_new_session=True,  # the pty becomes its controlling terminal, as in a shell
    )
    os.close(terminal)
    shown = b""

    def read_until(wanted: bytes, after: int = 0) -> int:
        """Read until ``wanted`` shows after offset ``after``; the offset past it."""
        nonlocal shown
        deadline = time.monotonic() + 120
        while (found := shown.find(wanted, after)) < 0:
            left = deadline - time.monotonic()
            assert left > 0 and demo.poll() is None, (wanted, shown[-3000:])
            if select.select([controller], [], [], left)[0]:
                shown += os.read(controller, 65536)
        return found + len(wanted)

    try:
        tui_from = read_until(b"q quits it and stops the demo")
        if ended_by == "q":
            # the dashboard's shop table (the setup printed the shop ids before the TUI)
            read_until(b"rakuten-main", read_until(b"\x1b[?1049h", tui_from))
            os.write(controller, b"q")
        deadline = time.monotonic() + 120
        while demo.poll() is None:
            assert time.monotonic() < deadline, shown[-3000:]
            if select.select([controller], [], [], 1)[0]:
                try:
                    shown += os.read(controller, 65536)
                except OSError:
                    break  # the terminal's other end is gone: the demo ended
        assert demo.wait(timeout=60) == 0, shown[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        os.close(controller)
    # the alternate screen was left: what the demo said last is on the operator's screen
    assert b"\x1b[?1049l" in shown[tui_from:], shown[-3000:]
    assert b"stopped cleanly" in shown[shown.rindex(b"\x1b[?1049l") :], shown[-3000:]
    assert processes_naming(tmp_path) == []
