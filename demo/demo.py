"""``make demo``: zaiko and the simulated malls of every kind, on this machine.

1. writes the credentials the example configs name (SSH keys for the SFTP shops, API
   secrets and the FTPS password matching conf/mallsim.example.toml) into state/credentials;
2. starts the mall simulator (conf/mallsim.example.toml) and the daemon
   (conf/zaiko.example.toml), each a real process, and waits until both are ready;
3. applies conf/shops.example.toml (one shop of every mall kind), registers the products
   and imports their stock with the real CLI, then shows status and the simulator's truth.

It keeps running (customers keep ordering at the simulated shops) until Ctrl-C, or for
DEMO_SECONDS seconds. Taking those orders in and pushing quantities back to the malls are
the shop actors of the coming issues; until then the demo shows the ledger side.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncssh

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "state"
CREDENTIALS = STATE / "credentials"
ZAIKO_CONFIG = ROOT / "conf" / "zaiko.example.toml"
SIM_CONFIG = ROOT / "conf" / "mallsim.example.toml"
CATALOG = "商品コード,商品名\r\nTSHIRT-RED-M,Tシャツ 赤 M\r\nTSHIRT-RED-L,Tシャツ 赤 L\r\nMUG-001,マグカップ①\r\nCAP-001,キャップ㈱特製\r\n"
STOCK = "商品コード,想定在庫数,保留在庫数\r\nTSHIRT-RED-M,20,2\r\nTSHIRT-RED-L,5,\r\nMUG-001,40,\r\nCAP-001,8,\r\n"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def write_credentials() -> None:
    CREDENTIALS.mkdir(parents=True, exist_ok=True, mode=0o700)
    for shop in ("rakuten-main", "futureshop-main"):
        key_path = CREDENTIALS / f"{shop}.key"
        if not key_path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            key_path.write_bytes(key.export_private_key())
            key_path.chmod(0o600)
            (CREDENTIALS / f"{shop}.key.pub").write_bytes(key.export_public_key())


def zaiko(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "--config", str(ZAIKO_CONFIG), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"zaiko {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def start_daemon(log: Path) -> subprocess.Popen[bytes]:
    notify_path = Path(tempfile.mkdtemp()) / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(60)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "--config", str(ZAIKO_CONFIG), "daemon"],
                cwd=ROOT,
                env=dict(os.environ, NOTIFY_SOCKET=str(notify_path)),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while b"READY=1" not in notify.recv(4096):
            pass
    return proc


def start_simulator(log: Path) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mallsim", "--config", str(SIM_CONFIG), "--fresh"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=out,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the simulator prints its addresses once it listens
    if not line:
        raise SystemExit(f"the mall simulator did not start; see {log}")
    return proc, json.loads(line)


def main() -> None:
    seconds = float(os.environ.get("DEMO_SECONDS", "0")) or None
    write_credentials()
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    say("starting the mall simulator (13 shops, one of every mall kind)")
    sim, addresses = start_simulator(logs / "mallsim.log")
    print(json.dumps(addresses, ensure_ascii=False))
    say("starting the zaiko daemon")
    daemon = start_daemon(logs / "zaiko.log")
    try:
        say("zaiko shops apply conf/shops.example.toml")
        print(zaiko("shops", "apply", str(ROOT / "conf" / "shops.example.toml")), end="")
        work = Path(tempfile.mkdtemp())
        (work / "catalog.csv").write_bytes(CATALOG.encode("cp932"))
        (work / "stock.csv").write_bytes(STOCK.encode("cp932"))
        say("zaiko sku import catalog.csv  (cp932, TEMPOSTAR catalog)")
        print(zaiko("sku", "import", str(work / "catalog.csv")), end="")
        say("zaiko import stock.csv  (在庫一括更新, overwrite expected)")
        print(zaiko("import", str(work / "stock.csv")), end="")
        say("zaiko sku show TSHIRT-RED-M")
        print(zaiko("sku", "show", "TSHIRT-RED-M"), end="")
        say("zaiko status")
        print(zaiko("status"), end="")
        http = addresses.get("http_url")
        say("the simulated malls: customers order what each shop shows (GET /_admin/state)")
        print(
            "order intake and reflection to the malls arrive with the next issues; the orders "
            "the simulated customers place now pile up in state/mail/<shop>/new and the order APIs."
        )
        deadline = time.monotonic() + seconds if seconds else None
        print(
            f"\nrunning; logs in {logs}. Ctrl-C stops"
            + (f" (or after {seconds:.0f}s)" if seconds else "")
        )
        while deadline is None or time.monotonic() < deadline:
            time.sleep(min(10.0, (deadline - time.monotonic()) if deadline else 10.0))
            if http:
                with urllib.request.urlopen(f"{http}/_admin/state", timeout=5) as response:
                    state = json.load(response)
                totals = state["totals"]
                print(
                    f"simulated malls: {totals['sold']} units sold, {totals['oversold']} oversold "
                    "(nothing pushes quantities to the malls yet)",
                    flush=True,
                )
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping")
        for proc in (daemon, sim):
            proc.send_signal(signal.SIGTERM)
        for proc in (daemon, sim):
            proc.wait(timeout=30)
        print("stopped cleanly")


if __name__ == "__main__":
    main()
