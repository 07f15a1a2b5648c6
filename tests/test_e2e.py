"""The real daemon process driven through the real CLI, as an operator would."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed, open_websocket

from cli.client import ClientError, connect
from protocols import control
from tests.conftest import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent


def test_operator_session_survives_restart(daemon_process: DaemonProcess) -> None:
    zaiko = daemon_process.cli
    assert "0 SKUs" in zaiko("status").stdout
    zaiko("sku", "add", "000123", "--name", "靴下 ① ㈱")
    zaiko("stock", "set", "000123", "--expected", "5")
    zaiko("stock", "add", "000123", "--expected", "-2")
    shown = json.loads(zaiko("sku", "show", "000123", "--json").stdout)
    assert shown["sku"]["code"] == "000123"
    assert shown["sku"]["stock"]["expected"] == 3
    assert [(j["delta"], j["after"]) for j in shown["sku"]["journal"]] == [(-2, 3), (5, 5)]
    human = zaiko("sku", "show", "000123").stdout
    assert "expected 3" in human and "manual" in human

    assert daemon_process.stop(signal.SIGTERM) == 0
    daemon_process.start()
    shown = json.loads(zaiko("sku", "show", "000123", "--json").stdout)
    assert shown["sku"]["stock"]["expected"] == 3
    listed = json.loads(zaiko("sku", "list", "--json").stdout)
    assert [s["code"] for s in listed["skus"]] == ["000123"]


def test_sets_shops_and_errors_through_the_cli(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    zaiko = daemon_process.cli
    for code, stock in (("SOCK-R", "9"), ("SOCK-B", "4")):
        zaiko("sku", "add", code)
        zaiko("stock", "set", code, "--expected", stock)
    zaiko("sets", "add", "SOCKS", "--child", "SOCK-R:3", "--child", "SOCK-B:1")
    assert (
        json.loads(zaiko("sku", "show", "SOCKS", "--json").stdout)["sku"]["stock"]["expected"] == 3
    )
    zaiko("stock", "add", "SOCK-R", "--expected", "-4")  # 5 // 3 = 1
    assert (
        json.loads(zaiko("sku", "show", "SOCKS", "--json").stdout)["sku"]["stock"]["expected"] == 1
    )

    applied = zaiko("shops", "apply", str(ROOT / "conf" / "shops.example.toml"))
    assert "rakuten-main" in applied.stdout
    status = json.loads(zaiko("status", "--json").stdout)
    assert len(status["shops"]) == 13

    for assignment, field in (
        ("send_interval_min=4", "send_interval_min"),
        ("send_interval_min=10000", "send_interval_min"),
        ("distribution_rate=101", "distribution_rate"),
        ("bulk_sync_hours=24", "bulk_sync_hours"),
        ("reflect_to_origin=false", "reflect_to_origin"),  # colorme-main has rate 50
    ):
        refused = zaiko("shops", "set", "colorme-main", assignment, check=False)
        assert refused.returncode == 1
        assert field in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    bad_file = tmp_path / "shops.toml"
    bad_file.write_text(
        '[[shops]]\nid = "x"\nmall = "colorme"\ndistribution_rate = 50\nreflect_to_origin = false\n'
    )
    refused = zaiko("shops", "apply", str(bad_file), check=False)
    assert refused.returncode == 1 and "reflect_to_origin" in refused.stderr

    # the guard: never-registered SKUs block reflect=active unless forced
    zaiko("sku", "add", "NEW-1")
    refused = zaiko("shops", "set", "yahoo-main", "reflect=active", check=False)
    assert refused.returncode == 1 and "never had stock registered" in refused.stderr
    zaiko("shops", "set", "yahoo-main", "reflect=active", "--force")

    listings = tmp_path / "listings.csv"
    listings.write_bytes(
        "商品コード,モール商品ID,属性1コード,連動\r\nNEW-1,item-1,,停止中\r\n".encode("cp932")
    )
    zaiko("listings", "import", str(listings), "--shop", "yahoo-main")
    shops = json.loads(zaiko("sku", "show", "NEW-1", "--json").stdout)["sku"]["shops"]
    assert {q["shop"]: q["linked"] for q in shops}["yahoo-main"] is False
    # one range everywhere: what an import refuses, stock set/add refuse in one line
    for args in (
        ("stock", "set", "SOCK-R", "--expected", "99999999999999999999"),
        ("stock", "set", "SOCK-R", "--reserve", str(2**63 - 1)),
        ("stock", "add", "SOCK-R", "--expected", "1000000000"),
    ):
        refused = zaiko(*args, check=False)
        assert refused.returncode == 1 and "999,999,999" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "internal" not in refused.stderr
    jobs = zaiko("jobs", "list")
    assert "no jobs yet" in jobs.stdout
    malls = zaiko("malls", "--json")
    assert len(json.loads(malls.stdout)) == 13


def test_cli_reports_a_stopped_daemon_in_one_line(tmp_path: Path) -> None:
    from tests.conftest import write_config

    config = write_config(tmp_path)
    daemon = DaemonProcess(config)
    daemon.start()
    assert daemon.stop() == 0
    result = daemon.cli("status", check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_kill_9_keeps_every_acknowledged_change_exactly_once(daemon_process: DaemonProcess) -> None:
    """A client applies keyed changes as fast as it can; the daemon is killed mid-stream.
    After restart every acknowledged key is in the journal once, and the stock adds up."""
    acknowledged: list[str] = []

    async def client(worker: int) -> None:
        async with connect(daemon_process.config, f"w{worker}") as zaiko:
            for n in range(100_000):
                key = f"w{worker}-{n}"
                await zaiko.request(
                    control.StockAdd(id=0, code=f"K{worker}", field="expected", delta=1, key=key)
                )
                acknowledged.append(key)
                if worker == 0 and n == 300:
                    daemon_process.proc.kill()  # type: ignore[union-attr]

    async def main() -> None:
        async with connect(daemon_process.config) as zaiko:
            for worker in range(4):
                await zaiko.request(control.SkuAdd(id=0, code=f"K{worker}"))
        try:
            async with trio.open_nursery() as nursery:
                for worker in range(4):
                    nursery.start_soon(client, worker)
        except* (ClientError, ConnectionClosed, OSError):
            pass

    trio.run(main)
    daemon_process.proc.wait()  # type: ignore[union-attr]
    assert len(acknowledged) > 300
    daemon_process.start()
    db = sqlite3.connect(daemon_process.config.database)
    refs = [ref for (ref,) in db.execute("SELECT ref FROM journal WHERE reason = 'manual'")]
    assert len(refs) == len(set(refs)), "a change was applied twice"
    assert set(acknowledged) <= set(refs), "an acknowledged change was lost"
    # retrying every acknowledged key changes nothing: each one was applied exactly once
    for worker in range(4):
        (expected,) = db.execute(
            "SELECT expected FROM stock WHERE sku = ?", (f"K{worker}",)
        ).fetchone()
        assert expected == len([r for r in refs if r.startswith(f"w{worker}-")])
    bad = db.execute(
        "SELECT s.sku FROM stock s LEFT JOIN (SELECT sku, sum(delta) t FROM journal "
        "WHERE field = 'expected' GROUP BY sku) j ON j.sku = s.sku WHERE s.expected != coalesce(j.t, 0)"
    ).fetchall()
    assert bad == []


def test_oversized_frames_do_not_grow_the_daemon(daemon_process: DaemonProcess) -> None:
    config = daemon_process.config
    token = config.token_file.read_text().strip()
    frame = '{"type":"ping","id":1,"pad":"' + "x" * (4 << 20) + '"}'

    async def send_oversized() -> None:
        address = config.address_file.read_text().strip().rpartition(":")
        async with open_websocket(address[0], int(address[2]), "/", use_ssl=False) as ws:
            await ws.send_message(control.encoder.encode(control.Hello(token=token)).decode())
            await ws.get_message()
            try:
                await ws.send_message(frame)
                await ws.get_message()
            except ConnectionClosed as closed:
                assert closed.reason.code == 1009
                return
            raise AssertionError("an oversized frame was accepted")

    trio.run(send_oversized)  # warm up allocator
    before = daemon_process.rss_kib()
    for _ in range(10):
        trio.run(send_oversized)
    after = daemon_process.rss_kib()
    # 10 frames of 4 MiB refused: the daemon keeps at most one frame's worth, not 40 MiB
    assert after - before < 8 * 1024, (before, after)
    assert daemon_process.cli("status").returncode == 0


def test_kill_9_during_a_million_row_import_applies_none_of_it(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    rows = 1_000_000
    catalog = tmp_path / "catalog.csv"
    with catalog.open("wb") as out:
        out.write("商品コード,商品名\r\n".encode("cp932"))
        out.writelines(f"{n:07d},商品{n}\r\n".encode("cp932") for n in range(rows))
    stock = tmp_path / "stock.csv"
    with stock.open("wb") as out:
        out.write("商品コード,想定在庫数\r\n".encode("cp932"))
        out.writelines(f"{n:07d},{n % 50 + 1}\r\n".encode() for n in range(rows))
    registered = daemon_process.cli("sku", "import", str(catalog), "--json")
    assert json.loads(registered.stdout)["job"]["success"] == rows

    async def import_and_kill() -> int:
        async with connect(daemon_process.config) as zaiko:
            started = await zaiko.request(control.ImportStart(id=0, file_name="stock.csv"))
            job: int = started.job.id
            with stock.open("rb") as handle:
                seq = 0
                while chunk := handle.read(control.UPLOAD_CHUNK_BYTES):
                    await zaiko.request(control.UploadChunk(id=0, job=job, seq=seq, data=chunk))
                    seq += 1
            await zaiko.send(control.ImportFinish(id=999, job=job))
            # killed inside the one transaction, after batches of it were applied
            await trio.to_thread.run_sync(
                daemon_process.wait_for_notify,
                lambda message: f"import job {job}: 100,000 rows applied" in message,
            )
            daemon_process.proc.kill()  # type: ignore[union-attr]
            return job

    job = trio.run(import_and_kill)
    daemon_process.proc.wait()  # type: ignore[union-attr]
    daemon_process.start()
    shown = json.loads(daemon_process.cli("jobs", "show", str(job), "--json").stdout)["job"]
    assert shown["state"] == "done" and shown["result"] == "failed"
    assert "interrupted" in shown["messages"][0]
    db = sqlite3.connect(daemon_process.config.database)
    assert db.execute("SELECT count(*) FROM journal WHERE reason = 'import'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM stock WHERE expected != 0").fetchone() == (0,)


def test_sigterm_during_an_upload_exits_0_and_the_job_shows_interrupted(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("sku", "add", "000123")

    async def start_upload() -> int:
        async with connect(daemon_process.config) as zaiko:
            started = await zaiko.request(control.ImportStart(id=0))
            job: int = started.job.id
            data = "商品コード,想定在庫数\r\n000123,5\r\n".encode("cp932")
            await zaiko.request(control.UploadChunk(id=0, job=job, seq=0, data=data))
            assert daemon_process.stop(signal.SIGTERM) == 0  # with the upload still open
            return job

    job = trio.run(start_upload)
    daemon_process.start()
    shown = json.loads(daemon_process.cli("jobs", "show", str(job), "--json").stdout)["job"]
    assert shown["result"] == "failed"
    assert "abandoned" in shown["messages"][0] or "interrupted" in shown["messages"][0]
    stock = json.loads(daemon_process.cli("sku", "show", "000123", "--json").stdout)["sku"]["stock"]
    assert stock["expected"] == 0


def test_import_dry_run_and_encodings_through_the_cli(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    zaiko = daemon_process.cli
    zaiko("sku", "add", "000123")
    all_bad = tmp_path / "bad.csv"
    all_bad.write_bytes("商品コード,想定在庫数\r\nNOPE,1\r\n".encode("cp932"))
    dry = zaiko("import", str(all_bad), "--dry-run", check=False)
    real = zaiko("import", str(all_bad), check=False)
    assert dry.returncode == real.returncode == 1
    assert "(dry run): failed, 1 rows, 0 would be applied, 1 failed" in dry.stderr
    assert "applied" not in dry.stdout and "nothing was changed" in dry.stdout
    dry_job = json.loads(zaiko("import", str(all_bad), "--dry-run", "--json", check=False).stdout)
    assert dry_job["job"]["dry_run"] is True and dry_job["job"]["result"] == "failed"
    assert dry_job["job"]["errors"] == [
        {"line": 2, "reason": "unknown SKU", "code": "NOPE", "field": "商品コード"}
    ]
    utf8 = tmp_path / "utf8.csv"
    utf8.write_bytes("商品コード,想定在庫数\r\n000123,4\r\n".encode())
    refused = zaiko("import", str(utf8), check=False)
    assert refused.returncode == 1 and "--encoding utf-8" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    zaiko("import", str(utf8), "--encoding", "utf-8")
    assert (
        json.loads(zaiko("sku", "show", "000123", "--json").stdout)["sku"]["stock"]["expected"] == 4
    )
