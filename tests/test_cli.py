"""The ``zaiko`` command as an operator meets it: where it finds its config, how ``shops show``
prints settings that ``shops set`` takes back, and why it cannot reach a daemon, in one line."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trio
from trio_websocket import HandshakeError

from cli import client, main, render
from cli.client import ClientError, connect, unreachable
from daemon.config import load_config
from protocols import control
from protocols.settings import ShopSettings, apply_changes, decode_shops_toml, mall_settings
from tests.conftest import DaemonProcess, write_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SHOPS_FILE = ROOT / "conf" / "shops.example.toml"
EXAMPLE_SHOPS = decode_shops_toml(EXAMPLE_SHOPS_FILE.read_bytes())
COMMENTED_EMPTY = re.compile(r"# ([\w.]+) =")


def zaiko(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """The CLI exactly as typed: no --config unless the test gives one."""
    environment = {k: v for k, v in os.environ.items() if k != "ZAIKO_CONFIG"}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- --config, ZAIKO_CONFIG, --help ----------------------------------------------------


def test_config_before_or_after_the_command_or_from_the_environment(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    config = str(daemon_process.config_path)
    missing = str(tmp_path / "missing.toml")
    assert "0 SKUs" in zaiko("--config", config, "status").stdout
    assert "0 SKUs" in zaiko("status", "--config", config).stdout
    assert "no jobs yet" in zaiko("jobs", "list", "--config", config).stdout
    assert "no jobs yet" in zaiko("jobs", "--config", config, "list").stdout
    assert "0 SKUs" in zaiko("status", env={"ZAIKO_CONFIG": config}).stdout
    # --config wins over ZAIKO_CONFIG, whichever of the two is wrong
    assert "0 SKUs" in zaiko("status", "--config", config, env={"ZAIKO_CONFIG": missing}).stdout
    refused = zaiko("status", "--config", missing, env={"ZAIKO_CONFIG": config})
    assert missing in one_line_failure(refused)
    # neither: the default, read from the current folder
    refused = zaiko("status", cwd=tmp_path)
    assert "cannot read config conf/zaiko.example.toml" in one_line_failure(refused)


def parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def test_help_of_every_command_shows_the_defaults() -> None:
    every = list(parsers(main.build_parser()))
    assert len(every) > 20
    for prog, parser in every:
        text = " ".join(parser.format_help().split())
        assert "--config FILE the daemon's TOML config (default: $ZAIKO_CONFIG" in text, prog
        for action in parser._actions:
            default = action.default
            if action.option_strings and default is not None and default is not False:
                if default not in ("", argparse.SUPPRESS):
                    assert f"(default: {default})" in text, (prog, action.dest)
    sku_add = " ".join(dict(every)["zaiko sku add"].format_help().split())
    assert "--reserve RESERVE units of expected kept back (保留在庫数) (default: 0)" in sku_add


# --- shops show / shops set ------------------------------------------------------------


def settings_lines(shown: str) -> dict[str, str]:
    """What an operator copies from ``shops show``: each setting line as KEY=VALUE, and the
    commented-out empty ones uncommented."""
    typed = {}
    for line in shown.splitlines():
        if empty := COMMENTED_EMPTY.fullmatch(line):
            typed[empty[1]] = ""
        elif not line.startswith("#"):
            key, sep, value = line.partition(" = ")
            assert sep, line
            typed[key] = value
    return typed


@pytest.mark.parametrize("shop", EXAMPLE_SHOPS, ids=lambda s: s.id)
def test_shown_settings_are_those_of_the_mall_and_set_back_unchanged(shop: ShopSettings) -> None:
    shown = render.for_reply(control.ShopReply(id=1, shop=shop))
    assert shown.startswith(f"# shop {shop.id}: ")
    typed = settings_lines(shown)
    assert list(typed) == list(mall_settings(shop.mall))
    assert apply_changes(shop, typed) == shop


def test_shops_show_prints_what_shops_set_takes(daemon_process: DaemonProcess) -> None:
    cli = daemon_process.cli
    cli("shops", "apply", str(EXAMPLE_SHOPS_FILE))
    # one of each kind of difference: file transport and an option, API only with other
    # options, intake only, file transport without an API
    shown = {
        shop_id: cli("shops", "show", shop_id).stdout
        for shop_id in ("rakuten-main", "amazon-main", "auction-main", "futureshop-main")
    }
    rakuten = shown["rakuten-main"].splitlines()
    for line in (
        "take_buyer_cancel = true",
        "bulk_sync_hours = 3,15",
        "trickle.quantity = 10",
        "reflect_to_origin = true",
        "ftp_url = sftp://rakuten-main@127.0.0.1:2222/ritem/batch",
        "# ftp_dir =",
    ):
        assert line in rakuten
    assert "take_pending = true" in shown["amazon-main"].splitlines()
    assert "take_buyer_cancel" not in shown["amazon-main"]
    assert "ftp_url" not in shown["amazon-main"]
    for absent in ("reflect", "send_interval_min", "trickle", "transport", "ftp_url"):
        assert absent not in shown["auction-main"].replace("zaiko shops set", "")
    assert "api_base_url" not in shown["futureshop-main"]
    # --json stays the whole settings document, whatever the mall has
    document = json.loads(cli("shops", "show", "auction-main", "--json").stdout)
    assert document["shop"]["reflect"] == "stopped" and "send_interval_min" in document["shop"]

    applied = {shop.id: json.loads(msgspec.json.encode(shop)) for shop in EXAMPLE_SHOPS}
    for shop_id, text in shown.items():
        assignments = [f"{key}={value}" for key, value in settings_lines(text).items()]
        after = json.loads(cli("shops", "set", shop_id, *assignments, "--json").stdout)["shop"]
        assert after == applied[shop_id], shop_id
    # a line copied whole, spaces and all, is one KEY=VALUE too
    cli("shops", "set", "rakuten-main", "trickle.quantity = 12")
    assert "trickle.quantity = 12" in cli("shops", "show", "rakuten-main").stdout


def test_unknown_settings_and_values_are_refused_with_the_valid_ones(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    cli = daemon_process.cli
    cli("shops", "apply", str(EXAMPLE_SHOPS_FILE))
    for assignment, wanted in (
        (
            "send_intervl_min=5",
            "send_intervl_min: unknown setting for rakuten shops; did you "
            "mean send_interval_min? (valid: name, order_intake, ",
        ),
        (
            "order_intake=activ",
            "order_intake: unknown value 'activ'; did you mean active? "
            "(one of: active, suspended, stopped)",
        ),
        ("transport=sftp", "transport: unknown value 'sftp'; did you mean ftp? (one of: api, ftp)"),
        ("take_pending=true", "take_pending: not a setting of rakuten shops"),
    ):
        refused = cli("shops", "set", "rakuten-main", assignment, check=False)
        assert wanted in one_line_failure(refused), assignment
    bad_file = tmp_path / "shops.toml"
    bad_file.write_text('[[shops]]\nid = "r2"\nmall = "rakuten"\nsend_intervl_min = 5\n')
    refused = one_line_failure(cli("shops", "apply", str(bad_file), check=False))
    assert "shops[0] (r2).send_intervl_min: unknown setting; did you mean send_interval_min?" in (
        refused
    )


# --- cannot reach the daemon -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_listening_on(directory: Path, port: int, token: bool = True) -> Path:
    directory.mkdir(exist_ok=True)
    path = write_config(directory)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    if token:
        state = directory / "state"
        state.mkdir(exist_ok=True)
        (state / "control.token").write_text("t" * 43 + "\n")
    return path


def test_nothing_listening_says_connection_refused_and_how_to_start(tmp_path: Path) -> None:
    config = config_listening_on(tmp_path, free_port())
    line = one_line_failure(zaiko("--config", str(config), "status"))
    assert "connection refused, nothing listens there: is the daemon running?" in line
    assert line.endswith(f"Start it with: zaiko --config {config} daemon")
    # a fresh state_dir: no token yet, since the daemon never started
    config = config_listening_on(tmp_path / "fresh", free_port(), token=False)
    line = one_line_failure(zaiko("status", "--config", str(config)))
    assert "no control token at" in line and "Start it with" in line


def test_port_0_without_or_with_a_stale_address_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "control.token").write_text("t" * 43)
    line = one_line_failure(zaiko("--config", str(config), "status"))
    assert "control.addr at start, and that file is missing: is the daemon running?" in line
    (tmp_path / "state" / "control.addr").write_text(f"127.0.0.1:{free_port()}\n")
    line = one_line_failure(zaiko("--config", str(config), "status", "--json"))
    assert "connection refused" in line and "left by a daemon that did not stop cleanly" in line


def serve_once(answer: bytes | None) -> int:
    """A TCP server that accepts one connection and sends ``answer`` (None: stays silent)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with server, server.accept()[0] as conn:
            conn.recv(65536)
            if answer is not None:
                conn.sendall(answer)
            else:
                conn.recv(65536)  # until the client gives up

    threading.Thread(target=serve, daemon=True).start()
    return int(server.getsockname()[1])


def test_another_program_on_the_port_refuses_the_handshake(tmp_path: Path) -> None:
    port = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    line = one_line_failure(zaiko("--config", str(config_listening_on(tmp_path, port)), "status"))
    assert f"127.0.0.1:{port} answered HTTP 404 instead of a zaiko websocket" in line


def test_a_silent_listener_times_out_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = serve_once(None)
    monkeypatch.setattr(client, "CONNECT_TIMEOUT_S", 0.5)
    assert main.main(["--config", str(config_listening_on(tmp_path, port)), "status"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"zaiko: the daemon at 127.0.0.1:{port} did not answer within 0.5 s: is it "
        "stuck, or does another program listen on that port?\n"
    )


def test_a_wrong_token_says_the_token_file_is_not_the_running_daemons(
    daemon_process: DaemonProcess,
) -> None:
    token_file = daemon_process.config.token_file
    token_file.write_text("w" * 43 + "\n")  # the daemon keeps the token it read at start
    line = one_line_failure(daemon_process.cli("status", check=False))
    assert f"refused the control token in {token_file} (close 4401)" in line
    assert "does not match the running daemon's" in line and "state_dir" in line


def test_os_errors_are_told_by_their_strerror(tmp_path: Path) -> None:
    # trio reports a failed connect as a group of the real errors, trio_websocket wraps it
    real = ConnectionRefusedError(errno.ECONNREFUSED, "Error connecting to ('::1', 1): ...")
    attempts = OSError("all attempts to connect to 127.0.0.1:1 failed")
    attempts.__cause__ = ExceptionGroup("all attempts", [real])
    wrapped = HandshakeError()
    wrapped.__cause__ = attempts
    assert client.strerror(wrapped) == "Connection refused"
    config = load_config(write_config(tmp_path))
    unreachable_net = HandshakeError()
    unreachable_net.__cause__ = OSError(errno.ENETUNREACH, "Error connecting: Network is down?")
    message = str(unreachable(unreachable_net, config, "127.0.0.1:1", 1.0))
    assert message == "cannot reach the daemon at 127.0.0.1:1: Network is unreachable"


def test_an_unexpected_error_is_one_line_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(path: Path) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(main, "load_config", broken)
    assert main.main(["status", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "zaiko: unexpected error RuntimeError: boom (ZAIKO_TRACEBACK=1 shows where)\n"
    )
    assert json.loads(captured.out)["type"] == "error"


async def test_connect_refusals_are_client_errors(tmp_path: Path) -> None:
    config = load_config(config_listening_on(tmp_path, free_port()))
    with pytest.raises(ClientError, match="connection refused"):
        async with connect(config):
            pass
    with trio.fail_after(5):
        port = serve_once(None)
        config = load_config(config_listening_on(tmp_path / "silent", port))
        with pytest.raises(ClientError, match=r"did not answer within 0\.2 s"):
            async with connect(config, timeout_s=0.2):
                pass


def test_reflect_now_dry_run_shows_the_formula_and_sku_show_what_was_sent(
    daemon_process: DaemonProcess,
) -> None:
    cli = daemon_process.cli
    cli("shops", "apply", str(EXAMPLE_SHOPS_FILE))
    cli("shops", "set", "rakuten-main", "distribution_rate=50", "trickle.enabled=false")
    cli("sku", "add", "ABC-01")
    cli("stock", "set", "ABC-01", "--expected", "100")
    cli("stock", "set", "ABC-01", "--reserve", "20")
    # an overwrite of a value that changed since it was read is refused, naming both
    stale = cli("stock", "set", "ABC-01", "--expected", "7", "--if-was", "90", check=False)
    assert stale.returncode != 0 and "expected is 100 now, not 90 as read" in stale.stderr
    shown = cli("reflect", "now", "--shop", "rakuten-main", "--dry-run").stdout
    assert "rakuten-main: 1 quantities would be sent (dry run: nothing sent)" in shown
    row = next(line for line in shown.splitlines() if line.startswith("ABC-01"))
    assert row.split()[:7] == ["ABC-01", "ABC-01", "-", "40", "100", "20", "50%"]
    stopped = cli("reflect", "now", "--shop", "rakuten-main", check=False)
    assert stopped.returncode != 0
    assert "switch it on with zaiko shops set rakuten-main reflect=active" in stopped.stderr
    detail = json.loads(cli("sku", "show", "ABC-01", "--json").stdout)["sku"]["shops"]
    rakuten = next(q for q in detail if q["shop"] == "rakuten-main")
    assert (rakuten["target"], rakuten["pending"], rakuten["pushed"]) == (40, True, None)
    assert "quantity" in cli("sku", "show", "ABC-01").stdout


def test_audit_from_a_file_the_merchant_downloaded_and_resaved_in_excel(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    """quantity.csv as Excel writes it back (cp932, CR-only line ends, every field quoted):
    each difference explained, a listing zaiko does not know named, a bad row named by its
    line; and the API audit of a shop whose auditor cannot run says why, in one line."""
    cli = daemon_process.cli
    cli("shops", "apply", str(EXAMPLE_SHOPS_FILE))
    for code, count in (("Y-1", 10), ("Y-2", 5), ("Y-3", 2)):
        cli("sku", "add", code)
        cli("stock", "set", code, "--expected", str(count))
    rows = [
        ("code", "sub-code", "quantity", "allow-overdraft"),
        ("Y-1", "", "10", ""),
        ("Y-2", "", "9", ""),
        ("ZZ-9", "", "4", ""),
        ("Y-4", "", "数量", ""),
    ]
    text = "\r".join(",".join(f'"{field}"' for field in row) for row in rows) + "\r"
    download = tmp_path / "quantity.csv"
    download.write_bytes(text.encode("cp932"))
    shown = cli("audit", "--shop", "yahoo-main", "--file", str(download)).stdout
    assert (
        "3 linked SKU(s) checked: 2 drift (0 changed at the mall or not applied, "
        "1 missing at the mall, 1 unknown to zaiko), 1 push(es) pending"
    ) in shown
    assert "Y-2 Y-2: the mall shows 9, zaiko's target is 5: a push is pending" in shown
    assert "Y-3: the mall has no listing Y-3" in shown
    assert "ZZ-9: a listing zaiko does not know (the mall shows 4)" in shown
    assert "line 5" in shown and "quantity" in shown
    status = json.loads(cli("status", "--json").stdout)
    yahoo = next(s for s in status["shops"] if s["id"] == "yahoo-main")
    assert (yahoo["audit"]["checked"], yahoo["audit"]["drift"]) == (3, 2)
    # by the API: the example's token file is missing, so its auditor cannot start
    failed = cli("audit", "--shop", "yahoo-main", check=False)
    line = one_line_failure(failed)
    assert "its auditor is not running" in line and "api_credential" in line
