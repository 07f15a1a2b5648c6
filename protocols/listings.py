"""The per-shop listing override CSV (``zaiko listings import FILE --shop S``).

Header (English or Japanese names): ``sku``/``商品コード``, ``item_id``/``モール商品ID``,
optional ``variation_1``/``variation_2`` (``属性1コード``/``属性2コード``) and ``linked``/``連動``
(``1``/``0``, ``true``/``false``, ``連動``/``停止中``; blank means linked).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from protocols.control import ListingRow
from protocols.malls.base import RowError, csv_records, decoded_lines

COLUMNS = {
    "sku": "sku",
    "商品コード": "sku",
    "item_id": "item_id",
    "モール商品id": "item_id",
    "variation_1": "variation_1",
    "属性1コード": "variation_1",
    "variation_2": "variation_2",
    "属性2コード": "variation_2",
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
    raw_lines: Iterable[bytes], encoding: str = "cp932"
) -> Iterator[ListingRow | RowError]:
    records = csv_records(decoded_lines(raw_lines, encoding))
    header: dict[str, int] | None = None
    for number, record in records:
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
        variation = tuple(v for v in (cell("variation_1"), cell("variation_2")) if v)
        yield ListingRow(
            sku=sku, item_id=cell("item_id"), variation=variation, linked=LINKED[linked_text]
        )
