"""Starting ``zaiko daemon``: one daemon per state directory; a start-up failure is one line."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from cli.client import connect
from protocols import control
from tests.conftest import ROOT, DaemonProcess, write_config


def start_daemon(config_path: Path) -> subprocess.CompletedProcess[str]:
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
            second = await trio.to_thread.run_sync(start_daemon, daemon_process.config_path)
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


LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ")


def refused_in_one_line(config_path: Path) -> str:
    """The failure line of a daemon that did not start. Before it, only the log records
    of what the daemon did (e.g. creating the database) may appear: never a traceback."""
    result = start_daemon(config_path)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if not LOG_RECORD.match(line)] == lines[-1:], result.stderr
    assert lines[-1].startswith("zaiko: "), result.stderr
    return lines[-1]


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "zaiko.toml"
        config.write_text(
            f'[daemon]\nstate_dir = "state"\n[control]\nlisten = "127.0.0.1:{port}"\n'
        )
        line = refused_in_one_line(config)
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in line
    assert "[control] listen" in line
    assert not (tmp_path / "state" / "control.addr").exists()


def test_a_state_dir_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = tmp_path / "zaiko.toml"
    config.write_text('[daemon]\nstate_dir = "file/state"\n[control]\nlisten = "127.0.0.1:0"\n')
    line = refused_in_one_line(config)
    assert f"cannot use state dir {tmp_path / 'file' / 'state'}: Not a directory" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the mode says")
def test_a_state_dir_without_permission_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir(mode=0o500)
    try:
        line = refused_in_one_line(config)
    finally:
        (tmp_path / "state").chmod(0o700)
    assert "Permission denied" in line and str(tmp_path / "state") in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "cannot read config"),
        ("[daemon\n", "zaiko.toml: "),
        ('[daemon]\nstate_dir = "state"\nstat_dir = "typo"\n', "stat_dir"),
        ('[daemon]\nstate_dir = "state"\n[control]\nlisten = "0.0.0.0:8765"\n', "loopback"),
    ],
)
def test_a_bad_config_is_one_line(tmp_path: Path, text: str | None, expected: str) -> None:
    config = tmp_path / "zaiko.toml"
    if text is not None:
        config.write_text(text)
    assert expected in refused_in_one_line(config)
    assert not (tmp_path / "state").exists()


def test_a_database_newer_than_this_zaiko_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    with sqlite3.connect(tmp_path / "state" / "zaiko.sqlite3") as db:
        db.execute("PRAGMA user_version = 999")
    line = refused_in_one_line(config)
    assert "newer than this zaiko" in line and "upgrade zaiko" in line


def test_a_file_that_is_no_database_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "zaiko.sqlite3").write_bytes(b"not a database, " * 512)
    line = refused_in_one_line(config)
    assert "zaiko.sqlite3" in line and "not a database" in line


def test_a_token_file_others_can_read_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    token = tmp_path / "state" / "control.token"
    token.write_text("x" * 43 + "\n")
    token.chmod(0o644)
    line = refused_in_one_line(config)
    assert str(token) in line and "chmod 600" in line
