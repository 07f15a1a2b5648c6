"""Listings: the per-shop listing override CSV (``zaiko listings import FILE --shop S``), how a
variation is stored, and the rule that maps a mall item (an order line) to a listed SKU.

Header (English or Japanese names): ``sku``/``商品コード``, ``item_id``/``モール商品ID``,
optional ``variation_1``/``variation_2`` (``属性1コード``/``属性2コード``), ``alt_item_id``
(the mall's other identifier of the item, e.g. Rakuten's 商品番号 beside 商品管理番号) and
``linked``/``連動`` (``1``/``0``, ``true``/``false``, ``連動``/``停止中``; blank means linked).
A Rakuten choice whose 子番号 is empty is written ``choice:<choice name>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence

import msgspec

from protocols.control import ListingRow
from protocols.malls.base import CHOICE_PREFIX, RowError, csv_records, identifier, identifiers

COLUMNS = {
    "sku": "sku",
    "商品コード": "sku",
    "item_id": "item_id",
    "モール商品id": "item_id",
    "variation_1": "variation_1",
    "属性1コード": "variation_1",
    "variation_2": "variation_2",
    "属性2コード": "variation_2",
    "alt_item_id": "alt_item_id",
    "linked": "linked",
    "連動": "linked",
}
LINKED = {
    "1": True,
    "true": True,
    "連動": True,
    "": True,
    "0": False,
    "false": False,
    "停止中": False,
}


def read_listings(
    chunks: Iterable[bytes], encoding: str = "cp932"
) -> Iterator[ListingRow | RowError]:
    """The rows of a listings CSV that arrives as byte ``chunks`` (a binary file object will
    do); records, not lines, numbered by their first line (``csv_records``)."""
    header: dict[str, int] | None = None
    for number, record in csv_records(chunks, encoding):
        if isinstance(record, RowError):
            yield record
            continue
        if header is None:
            header = {}
            for index, name in enumerate(record):
                key = COLUMNS.get(name.strip().lower())
                if key:
                    header[key] = index
            missing = [name for name in ("sku", "item_id") if name not in header]
            if missing:
                yield RowError(line=number, reason=f"header lacks column(s) {', '.join(missing)}")
                return
            continue

        def cell(name: str, fields: list[str] = record, columns: dict[str, int] = header) -> str:
            index = columns.get(name)
            return fields[index] if index is not None and index < len(fields) else ""

        if not any(field.strip() for field in record):
            continue  # an all-empty row, as Excel leaves below the data
        sku = cell("sku")
        if not sku:
            yield RowError(line=number, field="sku", reason="empty SKU code")
            continue
        linked_text = cell("linked").strip().lower()
        if linked_text not in LINKED:
            yield RowError(
                line=number,
                code=sku,
                field="linked",
                reason=f"{linked_text!r} is not 1/0, true/false or 連動/停止中",
            )
            continue
        yield ListingRow(
            sku=sku,
            item_id=identifier(cell("item_id")),
            variation=identifiers((cell("variation_1"), cell("variation_2"))),
            linked=LINKED[linked_text],
            alt_item_id=identifier(cell("alt_item_id")),
        )


def variation_key(variation: Sequence[str]) -> str:
    """A variation as the ledger stores and compares it: JSON, without trailing empty
    components, so that a one-axis choice read from a two-axis file (``("s", "")``) and the
    same choice in a listings CSV (``("s",)``) are one variation."""
    parts = list(identifiers(variation))
    while parts and not parts[-1]:
        parts.pop()
    return msgspec.json.encode(parts).decode()


def choice_names(variation: Sequence[str]) -> tuple[str, ...]:
    """The choice names of a variation's axes that are named by their choice."""
    return tuple(part[len(CHOICE_PREFIX) :] for part in variation if part.startswith(CHOICE_PREFIX))


def match_by_choices(
    printed: str, listed: Iterable[tuple[str, str, str, str]], choices: Sequence[str]
) -> str | None:
    """Which listing an order line means by the option values printed with it
    (``OrderLine.choices``), or None; ``printed`` is the item code the mall printed (for a
    Rakuten legacy choice: 商品番号 + the 子番号 it has) and ``listed`` the candidates
    ``(item_id, alt_item_id, variation_key, sku)``.

    Only listings with an axis named by its choice take part (a 子番号 that exists is in the
    printed code). A listing matches when its item identifier followed by its codes is the
    printed code and each of its choice names is one of the printed values (a mail also
    prints plain options, such as gift wrapping); the match with the most names wins, and a
    tie is no match: an order never guesses between two SKUs.
    """
    values = set(choices)
    found: list[tuple[int, str]] = []
    for item_id, alt_item_id, key, sku in listed:
        parts: list[str] = json.loads(key)
        names = choice_names(parts)
        if not names or not values.issuperset(names):
            continue
        codes = "".join(part for part in parts if not part.startswith(CHOICE_PREFIX))
        if printed in (item_id + codes, alt_item_id + codes if alt_item_id else None):
            found.append((len(names), sku))
    found.sort(reverse=True)
    if not found or (len(found) > 1 and found[0][0] == found[1][0]):
        return None
    return found[0][1]


def code_prefixes(printed: str) -> list[str]:
    """Every prefix of a printed code: the item identifiers it may start with."""
    return [printed[:end] for end in range(1, len(printed) + 1)]
