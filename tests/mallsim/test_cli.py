"""``python -m mallsim``: the mail subcommand, a real run stopped by SIGTERM, config errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh
import httpx
import pytest
import trio

from mallsim.config import ConfigError, parse_config
from mallsim.malls import Mall
from protocols.malls import KINDS, capability
from tests.mallsim.conftest import sim_toml

MAIL_KINDS = [k for k in KINDS if "mail" in capability(k).intake]
ROOT = Path(__file__).resolve().parents[2]


async def mallsim(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "mallsim", *args],
        cwd=ROOT,
        capture_stdout=True,
        capture_stderr=True,
        check=check,
    )


@pytest.mark.parametrize("kind", MAIL_KINDS)
async def test_mail_subcommand_output_parses(kind: str) -> None:
    mall = Mall(kind)
    if not (mall.has("render_order_mail") and mall.has("parse_order_mail")):
        pytest.skip(f"protocols.malls.{kind} has no order-mail codec yet")
    done = await mallsim(
        "mail", "--mall", kind, "--order", "ORDER-0001", "--item", "CODE-1:2", "--item", "CODE-2:1",
        "--at", "2025-06-01T10:11:12+09:00",
    )  # fmt: skip
    order = mall.parse_order_mail(done.stdout)
    assert order.order_no == "ORDER-0001"
    assert order.status == "new"
    assert order.ordered_at == "2025-06-01T10:11:12+09:00"
    assert [(ln.item_id, ln.quantity) for ln in order.lines] == [("CODE-1", 2), ("CODE-2", 1)]


async def test_mail_subcommand_cancelled_and_variation() -> None:
    done = await mallsim(
        "mail", "--mall", "rakuten", "--order", "123456-20250601-0000000001",
        "--item", "tshirt/sku:RED-M:3", "--cancelled",
    )  # fmt: skip
    order = Mall("rakuten").parse_order_mail(done.stdout)
    assert order.status == "cancelled"
    (line,) = order.lines
    assert (line.item_id, line.variation, line.sku, line.quantity) == (
        "tshirt", ("sku:RED-M",), "RED-M", 3,
    )  # fmt: skip


async def test_mail_subcommand_errors_are_one_line() -> None:
    done = await mallsim("mail", "--mall", "amazon", "--order", "X", "--item", "A:1", check=False)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "mallsim: amazon sends no order mails (it takes orders by api)"
    )
    bad = await mallsim("mail", "--mall", "rakuten", "--order", "X", "--item", "A:x", check=False)
    assert bad.returncode == 2
    assert "quantity 'x' is not a whole number" in bad.stderr.decode()


async def test_run_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    config = tmp_path / "mallsim.toml"
    config.write_text(sim_toml(tmp_path, key.export_public_key().decode().strip()))
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "mallsim", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(30):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "mallsim exited before printing its addresses"
                line += chunk
        addresses = json.loads(line)
        written = await trio.Path(tmp_path / "state" / "addresses.json").read_text()
        assert json.loads(written) == addresses
        known_hosts = await trio.Path(addresses["known_hosts"]).read_text()
        assert known_hosts.startswith(f"[127.0.0.1]:{addresses['sftp_port']} ssh-ed25519 ")
        async with httpx.AsyncClient() as client:
            state = (await client.get(addresses["http_url"] + "/_admin/state")).json()
        assert set(state["shops"]) == set(KINDS)
        assert "secret" not in json.dumps(state).lower()
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_run_reports_a_config_error_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[sim]\nlisten = "0.0.0.0"\n')
    done = await mallsim("--config", str(config), check=False)
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "mallsim: sim.listen: must be a loopback address (127.0.0.1 or ::1), got 0.0.0.0\n"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sim]\nport = 1\n", "Object contains unknown field `port` - at `$.sim`"),
        (
            '[[shops]]\nid = "s"\nmall = "ebay"\n',
            "Invalid enum value 'ebay' - at `$.shops[0].mall`",
        ),
        (
            '[[merchants]]\nid = "m"\nstock = { "A" = 1 }\n[[shops]]\nid = "s"\nmall = "amazon"\n'
            'merchant = "m"\nintake = "mail"\n',
            "shops[0].intake: amazon takes orders by api, not mail",
        ),
        (
            '[[merchants]]\nid = "m"\nstock = { "A" = 1 }\n[[shops]]\nid = "s"\nmall = "yahoo"\n'
            'merchant = "m"\nitems = [{ sku = "B" }]\n',
            "shops[0].items[0].sku: 'B' is not in merchant 'm''s stock",
        ),
        (
            '[[merchants]]\nid = "m"\n[[shops]]\nid = "_admin"\nmall = "yahoo"\nmerchant = "m"\n',
            "shops[0].id: '_admin'",
        ),
        (
            '[[shops]]\nid = "w"\nmall = "wowma_manager"\npending_fraction = 0.5\n',
            "shops[0].pending_fraction: wowma_manager has no pending or unpaid orders",
        ),
        (
            '[[shops]]\nid = "q"\nmall = "qoo10"\nforeign_fraction = 0.5\n',
            "shops[0].foreign_fraction: qoo10 shows no orders of other marketplaces",
        ),
        (
            '[[shops]]\nid = "a"\nmall = "amazon"\npending_fraction = 1.5\n',
            "shops[0].pending_fraction: must be 0–1, got 1.5",
        ),
        ("[sim]\norder_page_size = 0\n", "sim.order_page_size: must be ≥ 1, got 0"),
    ],
)
def test_config_errors_name_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(toml)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_example_config_loads() -> None:
    from mallsim.config import load_config

    cfg = load_config(ROOT / "conf" / "mallsim.example.toml")
    assert {s.mall for s in cfg.shops} >= {"rakuten", "amazon"}
