"""Starting ``zaiko daemon``: one daemon per state directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from cli.client import connect
from protocols import control
from tests.conftest import ROOT, DaemonProcess


def start_second_daemon(config_path: Path) -> subprocess.CompletedProcess[str]:
    # a daemon that does start would run until killed: the timeout turns that into a failure
    return subprocess.run(
        [sys.executable, "-m", "cli", "--config", str(config_path), "daemon"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_second_daemon_on_the_same_state_refuses_and_changes_nothing(
    daemon_process: DaemonProcess,
) -> None:
    """The first daemon has an upload open (a running job, a spooled file) while a second
    one starts on the same state and listen port 0: the second exits at once in one line,
    and the first finishes the import as if nothing happened."""
    daemon_process.cli("sku", "add", "000123")
    assert daemon_process.proc is not None
    first_pid = daemon_process.proc.pid
    state = daemon_process.config.state_dir

    async def import_around_a_second_start() -> tuple[subprocess.CompletedProcess[str], int]:
        async with connect(daemon_process.config) as zaiko:
            job = (await zaiko.request(control.ImportStart(id=0))).job.id
            data = "商品コード,想定在庫数\r\n000123,5\r\n".encode("cp932")
            await zaiko.request(control.UploadChunk(id=0, job=job, seq=0, data=data))
            spooled = sorted(p.name for p in (state / "uploads").iterdir())
            second = await trio.to_thread.run_sync(start_second_daemon, daemon_process.config_path)
            assert sorted(p.name for p in (state / "uploads").iterdir()) == spooled
            done = await zaiko.request(control.ImportFinish(id=0, job=job))
            assert (done.job.result, done.job.success) == ("ok", 1)
            return second, job

    second, job = trio.run(import_around_a_second_start)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert str(first_pid) in lines[0] and str(state) in lines[0]
    assert lines[0].startswith("zaiko: ")

    assert daemon_process.proc.poll() is None
    stock = json.loads(daemon_process.cli("sku", "show", "000123", "--json").stdout)["sku"]
    assert stock["stock"]["expected"] == 5
    shown = json.loads(daemon_process.cli("jobs", "show", str(job), "--json").stdout)["job"]
    assert shown["result"] == "ok"
    assert (daemon_process.config.address_file).exists()  # the second did not remove it


def test_a_daemon_killed_with_9_leaves_no_lock_behind(daemon_process: DaemonProcess) -> None:
    assert daemon_process.proc is not None
    daemon_process.proc.kill()
    daemon_process.proc.wait()
    daemon_process.start()
    lock = daemon_process.config.state_dir / "daemon.lock"
    assert lock.read_text().strip() == str(daemon_process.proc.pid)
    assert "0 SKUs" in daemon_process.cli("status").stdout
