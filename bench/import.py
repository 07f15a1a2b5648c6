"""Import a 1,000,000-row cp932 TEMPOSTAR stock file through the running daemon.

Starts the real daemon, registers the SKUs, then times ``zaiko import`` (the real CLI:
upload in chunks over the websocket to a spool file, then parse and apply batch by batch in
one transaction) against a raw baseline measured in the same run: csv parse of the same
file + one ``executemany`` upsert of the same rows into a stock table with the same
pragmas. Prints rows/s, the ratio, and
the peak RSS of the daemon and of the client. Targets: ratio ≤ 2.0, peak RSS ≤ 300 MB.

    python bench/import.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daemon_process import ROOT, DaemonProcess


def generate(directory: Path, rows: int) -> tuple[Path, list[Path]]:
    """A catalog, and two stock files with different counts, so that every run changes
    every row (1,000,000 journal rows a run: the honest worst case, not a no-op re-import)."""
    catalog = directory / "catalog.csv"
    with catalog.open("wb") as out:
        out.write("商品コード,商品名\r\n".encode("cp932"))
        out.writelines(f"{n:08d},商品①{n}\r\n".encode("cp932") for n in range(rows))
    stocks = []
    for variant in (1, 2):
        stock = directory / f"stock-{variant}.csv"
        with stock.open("wb") as out:
            out.write("商品コード,想定在庫数,保留在庫数,更新モード,更新対象\r\n".encode("cp932"))
            out.writelines(
                f"{n:08d},{n % 997 + variant},,1,1\r\n".encode("cp932") for n in range(rows)
            )
        stocks.append(stock)
    return catalog, stocks


def baseline(stock: Path, directory: Path) -> float:
    """Time the baseline in a process of its own, so that this process stays small and the
    client it forks later reports its own peak RSS, not ours."""
    output = subprocess.run(
        [sys.executable, __file__, "--baseline", str(stock), str(directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(output)


def run_baseline(stock: Path, directory: Path) -> float:
    """csv parse + one executemany upsert of the same rows (same pragmas as the ledger)."""
    db_path = directory / "baseline.sqlite3"
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE stock (sku TEXT PRIMARY KEY, expected INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
    )
    start = time.perf_counter()
    with stock.open("rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="cp932", newline=""))
        next(reader)
        rows = [(code, int(expected)) for code, expected, *_ in reader]
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO stock(sku, expected) VALUES (?, ?) ON CONFLICT(sku) DO UPDATE SET expected = excluded.expected",
        rows,
    )
    db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    db_path.unlink()
    return elapsed


def run_cli(daemon: DaemonProcess, *args: str) -> tuple[dict[str, object], float, float]:
    """Run ``zaiko ARGS --json``; return its JSON document, wall time and peak RSS (MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        daemon.command(*args, "--json"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(
            f"zaiko {' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    return json.loads(stdout), elapsed, usage.ru_maxrss / 1024


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        print(run_baseline(Path(sys.argv[2]), Path(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        catalog, stocks = generate(directory, args.rows)
        print(f"file: {args.rows:,} rows, {stocks[0].stat().st_size / 1e6:.1f} MB cp932")
        daemon = DaemonProcess(directory)
        try:
            document, seconds, _ = run_cli(daemon, "sku", "import", str(catalog))
            print(f"registered {document['job']['success']:,} SKUs in {seconds:.1f}s")
            imports, baselines, client_rss = [], [], []
            for run in range(args.runs):
                stock = stocks[run % 2]
                base = baseline(stock, directory)
                document, seconds, rss = run_cli(daemon, "import", str(stock))
                job = document["job"]
                assert job["success"] == args.rows, job
                imports.append(seconds)
                baselines.append(base)
                client_rss.append(rss)
                print(
                    f"run {run + 1}: import {seconds:.2f}s ({args.rows / seconds:,.0f} rows/s), baseline {base:.2f}s, ratio {seconds / base:.2f}"
                )
            daemon_rss = daemon.peak_rss_mb()
            for line in daemon.log_path.read_text().splitlines():
                if "import job" in line:
                    print("daemon:", line.split(": ", 1)[1])
        finally:
            daemon.stop()
    median_import = statistics.median(imports)
    median_base = statistics.median(baselines)
    ratio = statistics.median(i / b for i, b in zip(imports, baselines, strict=True))
    print(
        f"import through the daemon: median {median_import:.2f}s, {args.rows / median_import:,.0f} rows/s"
    )
    print(f"raw baseline (csv parse + one executemany upsert): median {median_base:.2f}s")
    print(
        f"ratio (median of per-run ratios): {ratio:.2f}  target ≤ 2.0: {'met' if ratio <= 2.0 else 'NOT met'}"
    )
    print(
        f"peak RSS: daemon {daemon_rss:.0f} MB, client {max(client_rss):.0f} MB  target ≤ 300 MB: {'met' if max(daemon_rss, max(client_rss)) <= 300 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
