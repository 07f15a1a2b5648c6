"""Reflection through the real daemon process and the real simulator process: quantities
pending while the mall is down survive a kill -9 of the daemon and reach the mall once it is
back, each once; the mall counts no 429."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from cli.client import connect
from protocols import control
from tests.conftest import ROOT, DaemonProcess

SIM = """
[sim]
listen = "127.0.0.1"
state_dir = "{state}"
maildir_root = "{mail}"

[[merchants]]
id = "m"
stock = {{ "SKU-A" = 10, "SKU-B" = 10 }}

[[shops]]
id = "y1"
mall = "yahoo"
merchant = "m"
api_secret = "token"
seller_id = "y1"
items = [{{ sku = "SKU-A", item_id = "a" }}, {{ sku = "SKU-B", item_id = "b" }}]
"""


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """The simulator as a process; its HTTP base URL."""
    config = tmp_path / "sim.toml"
    config.write_text(SIM.format(state=tmp_path / "sim", mail=tmp_path / "simmail"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mallsim", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        addresses = json.loads(proc.stdout.readline())
        yield str(addresses["http_url"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def admin(http: str, path: str, doc: object | None = None) -> dict[str, object]:
    data = None if doc is None else json.dumps(doc).encode()
    request = urllib.request.Request(
        f"{http}/_admin/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.load(response)
    return answer


def shown(http: str) -> dict[str, tuple[int, int]]:
    items = admin(http, "state")["shops"]["y1"]["items"]  # type: ignore[index]
    return {sku: (item["shown"], item["received"]) for sku, item in items.items()}


def wait_for_reflection(
    daemon: DaemonProcess, done: Callable[[control.ReflectStatus], bool]
) -> None:
    """Wait on the daemon's reflection events until shop y1's status satisfies ``done``
    (checked at once, then per event)."""

    async def wait() -> None:
        with trio.fail_after(30):
            async with connect(daemon.config, "test") as client:
                await client.request(control.Subscribe(id=0, topics=("reflect",)))
                while True:
                    status = await client.request(control.GetStatus(id=0))
                    if done(status.shops[0].reflection):
                        return
                    await client.next_event()

    trio.run(wait)


def test_pending_pushes_survive_a_kill_9_and_reach_the_mall_once_it_is_back(
    daemon_process: DaemonProcess, simulator: str
) -> None:
    zaiko = daemon_process.cli
    credentials = daemon_process.config.credentials_dir
    credentials.mkdir(parents=True, exist_ok=True)
    (credentials / "y1.token").write_text("token")
    shops = daemon_process.config_path.parent / "shops.toml"
    shops.write_text(
        f'[[shops]]\nid = "y1"\nmall = "yahoo"\napi_base_url = "{simulator}/y1"\n'
        'api_credential = "y1.token"\nseller_id = "y1"\nlisting_mode = "explicit"\n'
    )
    zaiko("shops", "apply", str(shops))
    listings = daemon_process.config_path.parent / "listings.csv"
    listings.write_text("sku,item_id\nSKU-A,a\nSKU-B,b\n")
    for code in ("SKU-A", "SKU-B"):
        zaiko("sku", "add", code)
        zaiko("stock", "set", code, "--expected", "8")
    zaiko("listings", "import", str(listings), "--shop", "y1", "--encoding", "utf-8")
    zaiko("shops", "set", "y1", "reflect=active")
    wait_for_reflection(daemon_process, lambda status: status.pushed == 2 and not status.pending)
    assert shown(simulator) == {"SKU-A": (8, 1), "SKU-B": (8, 1)}

    admin(simulator, "faults", {"shop": "y1", "down": True})
    zaiko("stock", "set", "SKU-A", "--expected", "3")
    zaiko("stock", "set", "SKU-B", "--expected", "9")

    wait_for_reflection(daemon_process, lambda status: bool(status.last_error))
    assert json.loads(zaiko("status", "--json").stdout)["shops"][0]["reflection"]["pending"] == 2
    assert daemon_process.stop(9) == -9
    admin(simulator, "faults", {"shop": "y1", "down": False})
    daemon_process.start()
    # the pass at start sends what was pending when the daemon died, each once
    wait_for_reflection(daemon_process, lambda status: status.pushed == 2 and not status.pending)
    assert shown(simulator) == {"SKU-A": (3, 2), "SKU-B": (9, 2)}
    reflection = json.loads(zaiko("status", "--json").stdout)["shops"][0]["reflection"]
    assert reflection["pending"] == 0 and reflection["last_error"] == ""
    assert admin(simulator, "state")["totals"]["throttled"] == 0  # type: ignore[index]
