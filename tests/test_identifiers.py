"""The one rule for mall identifiers (base.identifier): every mall's SKU join drops the
whitespace around each component, and a component of only whitespace adds nothing; the
listings CSV follows it and is read as records too."""

from __future__ import annotations

import io

import pytest

from protocols.control import ListingRow
from protocols.listings import read_listings, variation_key
from protocols.malls import KINDS, module
from protocols.malls.base import RowError, display_name

VARIATIONS = {
    "rakuten": ("-01", "Red"),
    "yahoo": ("item-01Red",),
    "ponpare": ("item-01Red",),
    "wowma": ("-01", "Red"),
    "wowma_manager": ("-01Red",),
    "amazon": (),
    "yahoo_auction": (),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_join_drops_spaces_around_each_component(kind: str) -> None:
    join = module(kind).join_sku
    variation = VARIATIONS.get(kind, ("-01", "Red"))
    clean = join("item", variation)
    assert join(" item\u3000", tuple(f" {part} " for part in variation)) == clean
    assert join("item", (*variation, " ")) == join("item", (*variation, ""))
    assert " " not in clean


def test_display_names_drop_br_and_whitespace_only_parts() -> None:
    assert display_name("トートバッグ<br>  ") == "トートバッグ"
    assert display_name("レッド<BR/>（残りわずか）", " ", "\u3000") == "レッド （残りわずか）"
    assert display_name(" ", "") == ""


def test_listings_csv_is_read_as_records_in_any_line_end() -> None:
    text = (
        "sku,item_id,variation_1,variation_2,alt_item_id,linked,memo\r"
        'tshirt-001-レッド, tshirt-001 ,choice:レッド, ,TSHIRT-001,1,"two\rlines"\r'
        "mug-01,mug-01,,,MUG-01,停止中,"
    )
    rows = list(read_listings(io.BytesIO(text.encode("cp932"))))
    assert rows == [
        ListingRow("tshirt-001-レッド", "tshirt-001", ("choice:レッド", ""), True, "TSHIRT-001"),
        ListingRow("mug-01", "mug-01", ("", ""), False, "MUG-01"),
    ]
    assert variation_key(rows[0].variation) == '["choice:レッド"]'
    assert variation_key(rows[1].variation) == "[]"


def test_a_listings_row_error_names_its_first_line() -> None:
    text = 'sku,item_id,linked,memo\n"A",a,yes,"x\ny"\n'
    (error,) = list(read_listings([text.encode("cp932")]))
    assert isinstance(error, RowError) and (error.line, error.field) == (2, "linked")
