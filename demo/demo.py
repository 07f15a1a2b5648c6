"""``make demo``: zaiko and the simulated malls of every kind, on this machine.

1. makes a fresh folder for the demo's state (``zaiko-demo-*`` in the temporary folder) and
   writes into it the daemon's and the simulator's configs: conf/zaiko.example.toml and
   conf/mallsim.example.toml with their state (``~/.local/state/zaiko``) moved there, and the
   credentials conf/shops.example.toml names (SSH keys, API secrets, the FTPS password, as
   the simulator expects them);
2. starts the mall simulator and the daemon, each a real process, and waits until both are
   ready;
3. applies conf/shops.example.toml (one shop of every mall kind), registers the products of
   demo/catalog.csv, imports demo/stock.csv, imports each shop's listings (the mall item ids
   the simulator's shops use), and switches every shop's order intake (受注取込) and stock
   reflection (在庫反映) on with the real CLI, then shows status.

On a terminal it then opens the operator's TUI (``zaiko tui``) on the running demo; quitting
it (q) stops everything the demo started. Without a terminal, or with DEMO_HEADLESS=1 (``make
demo HEADLESS=1``), it prints every 10 s what the malls sold and oversold, what zaiko took, and
how many shops show exactly zaiko's quantities, until Ctrl-C. DEMO_SECONDS ends either after
that many seconds. Meanwhile simulated customers order at the shops (120 times faster than
conf/mallsim.example.toml says), by mail and by the malls' order APIs; zaiko takes the orders,
moves stock and sends every shop its new quantity (at once when it drops, by API, SFTP or
FTPS). If something does not start, it says why in one line on stderr, stops whatever it
started, keeps the state folder for its logs and exits 1. The folder is removed after a clean
stop.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from protocols.malls import capability

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
EXAMPLE_STATE = "~/.local/state/zaiko"  # where the example configs keep their state
ZAIKO_EXAMPLE = ROOT / "conf" / "zaiko.example.toml"
SIM_EXAMPLE = ROOT / "conf" / "mallsim.example.toml"
SHOPS = ROOT / "conf" / "shops.example.toml"
CUSTOMER_SPEEDUP = 120
FTPS_CERTIFICATE = "mallsim-ftps.pem"  # the credential conf/shops.example.toml's FTPS shops name
CATALOG = ("TSHIRT-RED-M", "TSHIRT-RED-L", "MUG-001", "CAP-001")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
EXIT_INTERRUPTED = 130


class DemoFailed(Exception):
    """The demo cannot go on; the message is the one line it prints."""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def moved_config(example: Path, state: Path, target: Path) -> Path:
    """``example`` with its state under ``state`` instead of ``~/.local/state/zaiko``."""
    text = example.read_text()
    if EXAMPLE_STATE not in text:
        raise DemoFailed(f"{example} keeps no state in {EXAMPLE_STATE}; the demo cannot move it")
    target.write_text(text.replace(EXAMPLE_STATE, str(state)))
    return target


def write_credentials(credentials: Path, sim_config: Path) -> None:
    """Each credential file conf/shops.example.toml names, holding what the simulator's
    shop of the same id accepts; SFTP keys are made here and their public halves given to
    the simulator (its config names them)."""
    credentials.mkdir(parents=True, exist_ok=True, mode=0o700)
    sim_shops = {shop["id"]: shop for shop in tomllib.loads(sim_config.read_text())["shops"]}
    for shop in tomllib.loads(SHOPS.read_text())["shops"]:
        sim = sim_shops.get(shop["id"], {})
        if name := shop.get("api_credential"):
            write_secret(credentials / name, sim.get("api_secret", "").encode())
        if name := shop.get("ftp_credential"):
            if sim.get("ftp_password"):
                write_secret(credentials / name, sim["ftp_password"].encode())
            else:
                key = asyncssh.generate_private_key("ssh-ed25519")
                write_secret(credentials / name, key.export_private_key())
                (credentials / f"{name}.pub").write_bytes(key.export_public_key())


def write_secret(path: Path, secret: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)


def last_line(text: str) -> str:
    """What a process said last: its one-line reason when it failed."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(it said nothing)"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def last_words(self) -> str:
        return last_line(self.log.read_text(errors="replace"))


class Demo:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.logs = state / "logs"
        self.zaiko_config = state / "zaiko.toml"
        self.sim_config = state / "mallsim.toml"
        self.children: list[Child] = []
        self.running = False

    def prepare(self) -> None:
        self.logs.mkdir(parents=True)
        moved_config(ZAIKO_EXAMPLE, self.state, self.zaiko_config)
        moved_config(SIM_EXAMPLE, self.state, self.sim_config)
        # a shop's customers order a few times an hour: the demo has minutes, not hours
        sim_text = re.sub(
            r"^customers_per_hour = (\d+(?:\.\d+)?)",
            lambda found: f"customers_per_hour = {float(found.group(1)) * CUSTOMER_SPEEDUP:g}",
            self.sim_config.read_text(),
            flags=re.MULTILINE,
        )
        # the shops show nothing until zaiko sends their quantities: nobody buys what the
        # merchant's stock file was not imported for yet
        self.sim_config.write_text(sim_text.replace("{ sku = ", "{ shown = 0, sku = "))
        # the order APIs asked every 10 s instead of every minute, as customers come faster
        self.zaiko_config.write_text(
            re.sub(
                r"^api_poll_s = [0-9.]+",
                "api_poll_s = 10.0",
                self.zaiko_config.read_text(),
                flags=re.MULTILINE,
            )
        )
        write_credentials(self.state / "credentials", self.sim_config)

    def spawn(self, name: str, args: list[str], log: Path, **env: str) -> Child:
        """Start ``python ARGS`` (stdout a pipe, stderr to ``log``) and keep it for ``stop``.

        A signal that arrives while it starts waits until the process is on the list: inside
        Popen it would leave a process running that nothing stops.
        """
        arrived: list[int] = []
        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        handlers = {
            sig: signal.signal(sig, lambda signum, frame: arrived.append(signum)) for sig in stops
        }
        try:
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, *args],
                    cwd=ROOT,
                    env=dict(os.environ, **env),
                    stdout=subprocess.PIPE,
                    stderr=out,
                )
            self.children.append(child := Child(name, proc, log))
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            for signum in arrived[:1]:
                signal.raise_signal(signum)  # now its own handler runs: Ctrl-C, or a stop
        return child

    def start_simulator(self) -> dict[str, object]:
        simulator = self.spawn(
            "mall simulator",
            ["-m", "mallsim", "--config", str(self.sim_config), "--fresh"],
            self.logs / "mallsim.log",
        )
        proc = simulator.proc
        assert proc.stdout is not None
        line = proc.stdout.readline()  # its addresses, once every server listens; or EOF
        if not line:
            proc.wait()
            raise DemoFailed(f"the mall simulator did not start: {simulator.last_words()}")
        addresses: dict[str, object] = json.loads(line)
        return addresses

    def start_daemon(self) -> subprocess.Popen[bytes]:
        """The daemon, once it said READY=1 on a notify socket as it would to systemd."""
        log = self.logs / "zaiko.log"
        notify_path = self.state / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            daemon = self.spawn(
                "zaiko daemon",
                ["-m", "cli", "--config", str(self.zaiko_config), "daemon"],
                log,
                NOTIFY_SOCKET=str(notify_path),
            )
            proc = daemon.proc
            assert proc.stdout is not None
            # the daemon writes nothing to stdout: the pipe's end (EOF) says it exited
            exit_pipe = proc.stdout.fileno()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                left = deadline - time.monotonic()
                readable = select.select([notify.fileno(), exit_pipe], [], [], max(left, 0))[0]
                if not readable:
                    raise DemoFailed(f"the zaiko daemon was not ready within 60 s; see {log}")
                if notify.fileno() in readable and b"READY=1" in notify.recv(4096):
                    break
                if exit_pipe in readable and not os.read(exit_pipe, 4096):
                    proc.wait()
                    raise DemoFailed(f"the zaiko daemon did not start: {daemon.last_words()}")
        notify_path.unlink()
        return proc

    def zaiko(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "cli", "--config", str(self.zaiko_config), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise DemoFailed(f"zaiko {' '.join(args)} failed: {last_line(result.stderr)}")
        return result.stdout

    def check_children(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise DemoFailed(f"the {child.name} stopped: {child.last_words()}")

    def stop(self) -> list[str]:
        """Stop every process the demo started, the daemon first; what did not stop cleanly."""
        problems = []
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
                problems.append(f"the {child.name} did not stop within {STOP_TIMEOUT_S:.0f} s")
        return problems


def watch_tui(demo: Demo, seconds: float | None) -> None:
    """The operator's TUI on this terminal until it is quit (or ``seconds`` passed); a
    process of the demo that stops meanwhile ends it, and the demo says why."""
    terminal = termios.tcgetattr(sys.stdin)
    tui = subprocess.Popen(
        [sys.executable, "-m", "cli", "--config", str(demo.zaiko_config), "tui"], cwd=ROOT
    )
    deadline = time.monotonic() + seconds if seconds else None
    try:
        while True:
            try:
                code = tui.wait(
                    timeout=min(10.0, deadline - time.monotonic()) if deadline else 10.0
                )
            except subprocess.TimeoutExpired:
                demo.check_children()
                if deadline is not None and time.monotonic() >= deadline:
                    return
                continue
            if code != 0:
                raise DemoFailed(f"the TUI exited with status {code}")
            return
    finally:
        if tui.poll() is None:
            tui.terminate()  # zaiko tui ends on SIGTERM as on q
            try:
                tui.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                tui.kill()
                tui.wait()
        if tui.returncode != 0:
            # a TUI that did not end by itself may have left the terminal raw, on the
            # alternate screen, the cursor hidden: what the demo says next must be readable
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, terminal)
            sys.stderr.write("\x1b[?1000l\x1b[?1003l\x1b[?1006l\x1b[?1049l\x1b[?25h")
            sys.stderr.flush()


def show(demo: Demo, seconds: float | None, with_tui: bool) -> None:
    print(f"the demo's state, configs and logs: {demo.state}")
    say("starting the mall simulator (13 shops, one of every mall kind)")
    addresses = demo.start_simulator()
    print(json.dumps(addresses, ensure_ascii=False))
    say("starting the zaiko daemon")
    demo.start_daemon()
    zaiko_bin = os.path.relpath(Path(sys.executable).parent / "zaiko", Path.cwd())
    say("zaiko shops apply conf/shops.example.toml")
    print(demo.zaiko("shops", "apply", str(SHOPS)), end="")
    say("zaiko sku import demo/catalog.csv  (cp932, TEMPOSTAR catalog 商品コード,商品名)")
    print(demo.zaiko("sku", "import", str(DEMO / "catalog.csv")), end="")
    say("zaiko import demo/stock.csv  (在庫一括更新, overwrite expected)")
    print(demo.zaiko("import", str(DEMO / "stock.csv")), end="")
    say(
        "zaiko listings import FILE --shop SHOP  (each shop's mall item ids, as the simulator lists them)"
    )
    for shop, listing in write_listings(demo.sim_config, demo.state / "listings").items():
        demo.zaiko("shops", "set", shop, "listing_mode=explicit")
        imported = demo.zaiko(
            "listings", "import", str(listing), "--shop", shop, "--encoding", "utf-8"
        )
        print(f"shop {shop}: {imported}", end="")
    # the simulator's FTPS certificate is made at its start: the shops that upload by FTPS trust it
    certificate = Path(str(addresses["ftps_cert"]))
    write_secret(demo.state / "credentials" / FTPS_CERTIFICATE, certificate.read_bytes())
    say("zaiko shops set SHOP reflect=active  (在庫反映: every shop that takes stock)")
    for shop in tomllib.loads(SHOPS.read_text())["shops"]:
        if capability(shop["mall"]).stock_out:
            demo.zaiko("shops", "set", shop["id"], "reflect=active")
            print(f"shop {shop['id']}: stock reflection active ({shop.get('transport', 'api')})")
    say(
        "zaiko shops set SHOP order_intake=active --backlog take  (受注取込: every shop that takes orders)"
    )
    for shop in tomllib.loads(SHOPS.read_text())["shops"]:
        if capability(shop["mall"]).intake:
            demo.zaiko("shops", "set", shop["id"], "order_intake=active", "--backlog", "take")
            print(f"shop {shop['id']}: order intake active")
    say("zaiko sku show TSHIRT-RED-M")
    print(demo.zaiko("sku", "show", "TSHIRT-RED-M"), end="")
    say("zaiko status")
    print(demo.zaiko("status"), end="")
    http = addresses.get("http_url")
    say("the simulated malls: customers order what each shop shows")
    print(
        f"order mails land in {demo.state / 'mail'}/<shop>/new; the simulator's truth (sales, "
        f"oversold units, what each shop shows) is GET {http}/_admin/state"
    )
    print(
        f"customers come {CUSTOMER_SPEEDUP} times faster than in life: a sale at a mall polled "
        "every 10 s is 20 simulated minutes old when the others hear of it, so the demo "
        "oversells where a real day would not (bench/oversell.py measures a real day)"
    )
    demo.running = True
    if with_tui:
        say(f"{zaiko_bin} --config {demo.zaiko_config} tui  (q quits it and stops the demo)")
        watch_tui(demo, seconds)
        return
    print(
        f"\nrunning. Try, from another terminal: {zaiko_bin} --config {demo.zaiko_config} tui"
        f" (or status)\nCtrl-C stops" + (f" (or after {seconds:.0f} s)" if seconds else "")
    )
    # customers ordered since the simulator started: count from when zaiko took over
    before = sim_state(http)["totals"] if http else {}
    assert isinstance(before, dict)
    deadline = time.monotonic() + seconds if seconds else None
    while deadline is None or time.monotonic() < deadline:
        time.sleep(min(10.0, (deadline - time.monotonic()) if deadline else 10.0))
        demo.check_children()
        if http:
            try:
                with urllib.request.urlopen(f"{http}/_admin/state", timeout=5) as response:
                    totals = json.load(response)["totals"]
            except OSError as exc:
                raise DemoFailed(f"the mall simulator did not answer {http}: {exc}") from exc
            status = json.loads(demo.zaiko("status", "--json"))
            taken = sum(shop["intake"]["taken_today"] for shop in status["shops"])
            unmatched = sum(shop["intake"]["unmatched"] for shop in status["shops"])
            pending = sum(shop["reflection"]["pending"] for shop in status["shops"])
            in_step, listed = shops_in_step(demo, sim_state(http))
            print(
                f"since zaiko took over, the simulated malls sold {totals['sold'] - before['sold']}"
                f" units, {totals['oversold'] - before['oversold']} of them oversold; "
                f"zaiko: {taken} orders taken today, {unmatched} order lines unmatched; "
                f"{in_step} of {listed} shops show zaiko's quantities ({pending} pushes pending)",
                flush=True,
            )


def write_listings(sim_config: Path, folder: Path) -> dict[str, Path]:
    """A listings CSV per simulated shop: each SKU under the mall item id (and variation) the
    simulator's shop lists it with."""
    folder.mkdir(exist_ok=True)
    written = {}
    for shop in tomllib.loads(sim_config.read_text())["shops"]:
        if not shop.get("items") or not capability(shop["mall"]).stock_out:
            continue
        rows = ["sku,item_id,variation_1,variation_2"]
        for item in shop["items"]:
            variation = [*item.get("variation", ()), "", ""][:2]
            rows.append(",".join((item["sku"], item.get("item_id", item["sku"]), *variation)))
        path = folder / f"{shop['id']}.csv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        written[shop["id"]] = path
    return written


def sim_state(http: object) -> dict[str, object]:
    with urllib.request.urlopen(f"{http}/_admin/state", timeout=5) as response:
        state: dict[str, object] = json.load(response)
    return state


def shops_in_step(demo: Demo, state: dict[str, object]) -> tuple[int, int]:
    """How many simulated shops show, for every item they list, the quantity zaiko has for
    them (what was sold there since counted down), of the shops that list items."""
    targets: dict[tuple[str, str], int] = {}
    for code in CATALOG:
        for shop in json.loads(demo.zaiko("sku", "show", code, "--json"))["sku"]["shops"]:
            targets[(shop["shop"], code)] = shop["target"] if shop["linked"] else -1
    shops = state["shops"]
    assert isinstance(shops, dict)
    listed = in_step = 0
    for shop_id, shop in shops.items():
        items = shop["items"]
        if not items or not capability(shop["mall"]).stock_out:
            continue
        listed += 1
        in_step += all(targets.get((shop_id, sku)) == item["shown"] for sku, item in items.items())
    return in_step, listed


def main() -> int:
    seconds = float(os.environ.get("DEMO_SECONDS", "0")) or None
    # the TUI needs a terminal; DEMO_HEADLESS=1 (make demo HEADLESS=1) prints a status line
    # every 10 s instead, as CI and a piped run do
    # (Textual draws on stderr)
    with_tui = all(stream.isatty() for stream in (sys.stdin, sys.stdout, sys.stderr)) and not (
        os.environ.get("DEMO_HEADLESS")
    )
    # a plain kill of the demo stops what it started too, as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGHUP, lambda signum, frame: sys.exit(128 + signum))
    state = Path(tempfile.mkdtemp(prefix="zaiko-demo-"))
    demo = Demo(state)
    failure = ""
    exit_code = 0
    try:
        demo.prepare()
        show(demo, seconds, with_tui)
    except KeyboardInterrupt:
        exit_code = 0 if demo.running else EXIT_INTERRUPTED
    except DemoFailed as exc:
        failure = str(exc)
        exit_code = 1
    finally:
        # a second Ctrl-C must not cut the clean-up short (the children get it anyway)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if demo.running:
            say("stopping")
        problems = demo.stop()
    if failure:
        print(f"demo: {failure} (logs kept in {demo.logs})", file=sys.stderr)
    elif problems:
        print(f"demo: {'; '.join(problems)} (logs kept in {demo.logs})", file=sys.stderr)
        exit_code = 1
    else:
        shutil.rmtree(state, ignore_errors=True)
        if demo.children:
            print("stopped cleanly")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
