"""The ``zaiko`` command as an operator meets it: where it finds its config, how ``shops show``
prints settings that ``shops set`` takes back, and why it cannot reach a daemon, in one line."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from cli import main, render
from protocols import control
from protocols.settings import ShopSettings, apply_changes, decode_shops_toml, mall_settings
from tests.conftest import DaemonProcess

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
            if action.option_strings and action.default not in (None, False, "", "==SUPPRESS=="):
                assert f"(default: {action.default})" in text, (prog, action.dest)


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
