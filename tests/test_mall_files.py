"""Mall files as merchants really have them, through the real CLI against the real daemon
(issue 9): records, not lines; CRLF, LF and CR-only line ends; both quoting styles; choices
whose 子番号 is empty; identifiers with spaces; product names; 商品番号 beside 商品管理番号;
a TEMPOSTAR download with oversold counts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from daemon.ledger import listings
from protocols.malls import _mail, rakuten
from tests.conftest import DaemonProcess
from tests.ledger.harness import LedgerHarness

FIXTURES = Path(__file__).parent / "fixtures"
SHOPS = """
[[shops]]
id = "r1"
mall = "rakuten"

[[shops]]
id = "y1"
mall = "yahoo"
"""


def run_json(daemon: DaemonProcess, *args: str, ok: bool = True) -> Any:
    result = daemon.cli(*args, "--json", check=False)
    assert (result.returncode == 0) == ok, result.stderr
    return json.loads(result.stdout)


def job_of(daemon: DaemonProcess, *args: str, ok: bool = True) -> dict[str, Any]:
    job: dict[str, Any] = run_json(daemon, *args, ok=ok)["job"]
    return job


def counts(job: dict[str, Any]) -> tuple[str, int, int, int]:
    return job["result"], job["count"], job["success"], job["failure"]


def sku_of(daemon: DaemonProcess, code: str) -> dict[str, Any]:
    sku: dict[str, Any] = run_json(daemon, "sku", "show", code)["sku"]
    return sku


def apply_shops(daemon: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "shops.toml"
    path.write_text(SHOPS)
    daemon.cli("shops", "apply", str(path))


def test_rms_downloads_register_and_import_with_exact_counts_and_expected_codes(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    zaiko = daemon_process
    apply_shops(zaiko, tmp_path)
    item_csv = str(FIXTURES / "rakuten-item-download.csv")
    select_csv = str(FIXTURES / "rakuten-select-download.csv")

    # item.csv: 5 records on 20 lines; 3 have stock of their own
    job = job_of(zaiko, "sku", "import", item_csv, "--format", "rakuten_item", "--shop", "r1")
    assert counts(job) == ("ok", 3, 3, 0)
    job = job_of(zaiko, "import", item_csv, "--format", "rakuten_item")
    assert counts(job) == ("ok", 3, 3, 0)
    for code, name, expected in (
        ("mug-01", "マグカップ㈱特製", 9),
        ("bag-02", "トートバッグ", 4),
        ("case-04", "スマホケース", 2),
    ):
        shown = sku_of(zaiko, code)
        assert (shown["name"], shown["stock"]["expected"]) == (name, expected)

    # select.csv: 6 stock choices; 3 of one item have no 子番号
    job = job_of(zaiko, "sku", "import", select_csv, "--format", "rakuten_select", "--shop", "r1")
    assert counts(job) == ("ok", 6, 6, 0)
    assert any("子番号 is empty for 3 choices" in m for m in job["messages"])
    job = job_of(zaiko, "import", select_csv, "--format", "rakuten_select")
    assert counts(job) == ("ok", 6, 6, 0)
    assert "line 4 [tshirt-001]: 子番号 is empty for 3 choices" in job["messages"][0]
    stock = {
        code: sku_of(zaiko, code)["stock"]["expected"]
        for code in (
            "tshirt-001-レッド",
            "tshirt-001-ブルー",
            "tshirt-001-グリーン",
            "cap-01-bk",
            "cap-01-wh",
            "cap-01-gy",
        )
    }
    assert stock == {
        "tshirt-001-レッド": 5,
        "tshirt-001-ブルー": 3,
        "tshirt-001-グリーン": 0,
        "cap-01-bk": 7,
        "cap-01-wh": 2,
        "cap-01-gy": 1,
    }
    codes = [s["code"] for s in run_json(zaiko, "sku", "list")["skus"]]
    assert len(codes) == 9 and not [code for code in codes if " " in code or "\u3000" in code]
    red = {q["shop"]: q for q in sku_of(zaiko, "tshirt-001-レッド")["shops"]}["r1"]
    assert (red["item_id"], red["variation"]) == ("tshirt-001", ["choice:レッド"])

    # an order mail prints 商品番号 (+ 子番号) and the option values: each line reaches the
    # SKU the files registered
    zaiko.stop()
    db = sqlite3.connect(zaiko.config.database)
    assert db.execute("SELECT alt_item_id FROM listings WHERE sku = 'mug-01'").fetchone() == (
        "MUG-01",
    )
    db.close()
    order = rakuten.parse_order_mail(order_mail())
    ledger = LedgerHarness(zaiko.config.database)
    try:
        mapped = [
            ledger.engine.read(
                listings.listed_sku, "r1", line.item_id, line.variation, line.choices
            )
            or line.sku
            for line in order.lines
        ]
    finally:
        ledger.close()
    assert mapped == ["mug-01", "tshirt-001-ブルー", "cap-01-bk", "case-04"]


def order_mail() -> bytes:
    body = """[受注番号] 123456-20260612-0000000001
[日時]     2026-06-12 10:31:07
[商品]
マグカップ㈱特製 (MUG-01)
価格 1,980(円) x 1(個) = 1,980(円)
----------
Tシャツ 髙島屋コラボ (TSHIRT-001)
カラー:ブルー
ギフト包装:する
価格 2,980(円) x 2(個) = 5,960(円)
----------
キャップ (cap-01-bk)
カラー:ブラック
サイズ:フリー
価格 1,000(円) x 1(個) = 1,000(円)
----------
スマホケース (Case-04)
価格 1,000(円) x 1(個) = 1,000(円)
**********************************************************************
"""
    return _mail.render_mail(
        sender=rakuten.MAIL_SENDER,
        recipient="shop@example.jp",
        subject=rakuten.CONFIRMATION_SUBJECT,
        body=body,
        sent_at="2026-06-12T10:31:07+09:00",
        charset="iso-2022-jp",
    )


def test_cr_only_files_from_excel_for_mac(daemon_process: DaemonProcess, tmp_path: Path) -> None:
    zaiko = daemon_process
    apply_shops(zaiko, tmp_path)
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(
        "商品コード,商品名\r\nmug-01,マグ\r\ntshirt-001-レッド,赤\r\ncap-01-bk,黒\r\n"
        "case-04,ケース\r\nbag-02,バッグ\r\n".encode("cp932")
    )
    assert counts(job_of(zaiko, "sku", "import", str(catalog))) == ("ok", 5, 5, 0)

    # TEMPOSTAR stock file: 6 records after the header, one all-empty (skipped), one bad
    job = job_of(zaiko, "import", str(FIXTURES / "tempostar-stock-mac.csv"), ok=False)
    assert counts(job) == ("ok", 5, 4, 1)
    assert job["messages"] == ["line 6 [case-04] 想定在庫数: not an integer: 'x'"]
    assert sku_of(zaiko, "mug-01")["stock"]["expected"] == 12
    assert sku_of(zaiko, "tshirt-001-レッド")["stock"]["reserve"] == 1
    assert sku_of(zaiko, "bag-02")["stock"]["expected"] == 5  # the last line has no line end

    # Yahoo quantity.csv: a sub-code of one space is no sub-code; names lose <br>
    quantity = str(FIXTURES / "yahoo-quantity-mac.csv")
    job = job_of(zaiko, "sku", "import", quantity, "--format", "yahoo_quantity", "--shop", "y1")
    assert counts(job) == ("ok", 3, 3, 0)
    job = job_of(zaiko, "import", quantity, "--format", "yahoo_quantity", "--shop", "y1")
    assert counts(job) == ("ok", 3, 3, 0)
    assert sku_of(zaiko, "mug-01")["stock"]["expected"] == 5
    assert (
        sku_of(zaiko, "pen-02-bk")["name"],
        sku_of(zaiko, "pen-02-bk")["stock"]["expected"],
    ) == (
        "ボールペン 黒",
        3,
    )
    assert sku_of(zaiko, "pen-02-rd")["stock"]["expected"] == 4


def test_tempostar_download_with_oversold_counts_needs_allow_negative(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    zaiko = daemon_process
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes("商品コード,商品名\r\nmug-01,\r\nbag-02,\r\ncase-04,\r\n".encode("cp932"))
    job_of(zaiko, "sku", "import", str(catalog))
    download = str(FIXTURES / "tempostar-download-oversold.csv")

    job = job_of(zaiko, "import", download, ok=False)
    assert counts(job) == ("ok", 3, 1, 2)
    assert job["messages"][0].startswith("line 2 [mug-01] 想定在庫数: below 0: -2 (")
    assert all("--allow-negative" in message for message in job["messages"])
    assert sku_of(zaiko, "mug-01")["stock"]["expected"] == 0

    job = job_of(zaiko, "import", download, "--allow-negative")
    assert counts(job) == ("ok", 3, 3, 0)
    mug = sku_of(zaiko, "mug-01")
    assert mug["stock"]["expected"] == -2
    assert (mug["journal"][0]["reason"], mug["journal"][0]["after"]) == ("import", -2)
    assert sku_of(zaiko, "case-04")["stock"]["expected"] == -1
    zaiko.stop()
    db = sqlite3.connect(zaiko.config.database)
    assert db.execute("SELECT sku, expected, ref FROM oversells ORDER BY id").fetchall() == [
        ("mug-01", -2, f"job:{job['id']}"),
        ("case-04", -1, f"job:{job['id']}"),
    ]
    db.close()


def test_a_choice_whose_name_makes_no_usable_code_is_mapped_with_a_listing(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    """Refused with the fixes named; a listing (variation ``choice:<name>``, from a CR-only
    listings CSV) maps it, and the import with ``--shop`` reaches that SKU."""
    zaiko = daemon_process
    apply_shops(zaiko, tmp_path)
    long_name = "とても長い選択肢の名前" * 6
    select = tmp_path / "select.csv"
    select.write_bytes(
        (
            "項目選択肢用コントロールカラム,商品管理番号（商品URL）,選択肢タイプ,項目選択肢別在庫用横軸選択肢,"
            "項目選択肢別在庫用横軸選択肢子番号,項目選択肢別在庫用在庫数,項目選択肢別在庫用縦軸選択肢子番号\r\n"
            f"n,bag,i,{long_name},,6,\r\nn,bag,i,ミニ,,2,\r\n"
        ).encode("cp932")
    )
    job = job_of(
        zaiko, "sku", "import", str(select), "--format", "rakuten_select", "--shop", "r1", ok=False
    )
    assert counts(job) == ("ok", 2, 1, 1)
    assert job["messages"][0].startswith("line 2 [bag-とても長い")
    assert (
        "set the 子番号 in RMS, or map the choice to a SKU with zaiko listings import"
        in job["messages"][0]
    )
    assert job["messages"][1].startswith("line 2 [bag]: 子番号 is empty for 2 choices")
    zaiko.cli("sku", "add", "BAG-LONG", "--name", "バッグ 長い名前")
    mapping = tmp_path / "listings.csv"
    mapping.write_bytes(
        f"sku,item_id,variation_1,linked\rBAG-LONG,bag,choice:{long_name},1".encode("cp932")
    )
    zaiko.cli("listings", "import", str(mapping), "--shop", "r1")
    job = job_of(zaiko, "import", str(select), "--format", "rakuten_select", "--shop", "r1")
    assert counts(job) == ("ok", 2, 2, 0)
    assert sku_of(zaiko, "BAG-LONG")["stock"]["expected"] == 6
    assert sku_of(zaiko, "bag-ミニ")["stock"]["expected"] == 2
