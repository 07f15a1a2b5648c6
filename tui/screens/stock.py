"""Stock: SKUs found by code prefix and by name, a page at a time (``sku_list`` with ``after``
and ``limit``: the next page is read when the cursor or the scroll nears the end, so 100,000
SKUs are never read at once); Enter opens a SKU (``SkuScreen``). From here too: register a SKU
(商品登録) and define a set product (セット商品), each confirmed first."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from protocols import control
from tui.screens.base import PagedScreen, ZaikoScreen, add_columns, local_time
from tui.screens.dialogs import (
    ConfirmDialog,
    SetAddDialog,
    SkuAddDialog,
    StockEdit,
    StockEditDialog,
)

PAGE = 200
SEARCH_DELAY_S = 0.3  # typing: search once the operator pauses
COUNT_WIDTH = 8  # a count column's cells, at least (its header may be wider)
JOURNAL_ROWS = 50


class StockScreen(PagedScreen):
    TABLE = "#skus"
    NEAR_END_ROWS = 40
    MODE = "stock"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "key.search", key_display="/"),
        Binding("r", "reload", "key.refresh"),
        # ctrl keys: the search input has the focus when the screen opens, and takes letters
        Binding("ctrl+n", "add_sku", "key.sku_add"),
        Binding("ctrl+g", "add_set", "key.set_add"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._query = ("", "")  # (code prefix, name part) of the rows shown
        self._generation = 0  # which search the rows belong to: a page of an older one is dropped
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal(id="search"):
            yield Input(placeholder=self.labels("stock.code_prefix"), id="code")
            yield Input(placeholder=self.labels("stock.name_contains"), id="name")
        table: DataTable[str | Text] = DataTable(id="skus", cursor_type="row", zebra_stripes=True)
        add_columns(
            table,
            self.labels,
            [
                ("stock.code", 0),
                ("stock.name", 0),
                ("field.expected", COUNT_WIDTH),
                ("field.actual", COUNT_WIDTH),
                ("field.reserve", COUNT_WIDTH),
                ("stock.set", 0),
            ],
        )
        yield table
        yield Static("", id="count")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#skus", DataTable)
        self.watch_paging(table)
        self.query_one("#code", Input).focus()

    def action_search(self) -> None:
        self.query_one("#code", Input).focus()

    def action_reload(self) -> None:
        self.reload()

    # --- searching and paging ---------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DELAY_S, self.reload)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._search_timer is not None:
            self._search_timer.stop()
        self.reload()
        self.query_one("#skus", DataTable).focus()

    async def load(self) -> None:
        """The first page of what the inputs ask for."""
        self._query = (self.query_one("#code", Input).value, self.query_one("#name", Input).value)
        self._next_after = ""
        self._loading = False
        self._generation += 1
        self.query_one("#skus", DataTable).clear()
        await self.load_page()

    async def load_page(self) -> None:
        if self._loading or self._next_after is None:
            return
        self._loading = True
        generation = self._generation
        prefix, name = self._query
        reply = await self.ask(
            control.SkuList(id=0, after=self._next_after, prefix=prefix, name=name, limit=PAGE)
        )
        if generation != self._generation:
            return  # a newer search cleared the table meanwhile
        self._loading = False
        if not isinstance(reply, control.SkuListReply):
            return
        table = self.query_one("#skus", DataTable)
        for sku in reply.skus:
            if sku.code not in table.rows:
                table.add_row(*self._row(sku), key=sku.code)
        self._next_after = reply.next_after
        self._show_count()

    def _row(self, sku: control.SkuSummary) -> list[str | Text]:
        counts = [
            Text(str(value), justify="right", style="bold red" if value < 0 else "")
            for value in (sku.expected, sku.actual, sku.reserve)
        ]
        return [sku.code, sku.name, *counts, "◯" if sku.is_set else ""]

    def _show_count(self) -> None:
        rows = self.query_one("#skus", DataTable).row_count
        if not rows:
            text = self.labels("stock.none")
        elif self._next_after is not None:
            text = self.labels("stock.more", count=rows)
        else:
            text = self.labels("stock.loaded", count=rows)
        self.query_one("#count", Static).update(text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.app.push_screen(SkuScreen(event.row_key.value))

    # --- registering ------------------------------------------------------------------

    def action_add_sku(self) -> None:
        self.run_worker(self._add_sku(), group="add", exclusive=True, exit_on_error=False)

    async def _add_sku(self) -> None:
        labels = self.labels
        request = await self.app.push_screen_wait(SkuAddDialog(labels))
        if request is None:
            return
        question = labels(
            "sku_add.confirm",
            code=request.code,
            name=request.name or "-",
            reserve=request.reserve,
        )
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        if isinstance(await self.ask(request), control.SkuReply):
            self.say(labels("sku_add.done", code=request.code))
            self.reload()

    def action_add_set(self) -> None:
        self.run_worker(self._add_set(), group="add", exclusive=True, exit_on_error=False)

    async def _add_set(self) -> None:
        labels = self.labels
        request = await self.app.push_screen_wait(SetAddDialog(labels))
        if request is None:
            return
        question = labels(
            "set_add.confirm",
            parent=request.parent,
            name=request.name or "-",
            children=", ".join(f"{child.code} ×{child.qty}" for child in request.children),
        )
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        if isinstance(await self.ask(request), control.SkuReply):
            self.say(labels("set_add.done", parent=request.parent))
            self.reload()

    # --- live -------------------------------------------------------------------------

    def daemon_changed(self, event: control.Event) -> None:
        table = self.query_one("#skus", DataTable)
        if isinstance(event, control.StockChanged):
            level = event.stock
            try:
                for field in ("expected", "actual", "reserve"):
                    value = getattr(level, field)
                    table.update_cell(
                        level.code, f"field.{field}", Text(str(value), justify="right")
                    )
            except (CellDoesNotExist, RowDoesNotExist, KeyError):
                pass  # not among the rows shown
        elif isinstance(event, control.StockImported):
            self.reload_soon()


class SkuScreen(ZaikoScreen):
    """One SKU whole (``sku_show``): stock, set composition, each shop's quantity, journal;
    ``e`` changes a count after a confirmation."""

    MODE = "stock"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "key.back"),
        Binding("e", "edit", "key.edit"),
        Binding("r", "reload", "key.refresh"),
    ]

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self._sku: control.SkuDetail | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with VerticalScroll(id="sku"):
            yield Static("", id="sku-head")
            yield Static(self.labels("sku.shops"), classes="section")
            shops: DataTable[str | Text] = DataTable(id="sku-shops", cursor_type="row")
            add_columns(
                shops,
                self.labels,
                [
                    ("dash.shop", 0),
                    ("sku.linked", 0),
                    ("sku.target", COUNT_WIDTH),
                    ("sku.floor", COUNT_WIDTH),
                    ("sku.pushed", COUNT_WIDTH),
                    ("sku.pushed_at", 14),
                    ("sku.shown", COUNT_WIDTH),
                    ("sku.pending", 0),
                ],
            )
            yield shops
            yield Static(self.labels("sku.journal"), classes="section")
            journal: DataTable[str | Text] = DataTable(id="sku-journal", cursor_type="row")
            add_columns(
                journal,
                self.labels,
                [
                    ("journal.at", 14),
                    ("journal.field", 0),
                    ("journal.delta", 6),
                    ("journal.after", 6),
                    ("journal.reason", 0),
                    ("journal.ref", 0),
                    ("journal.actor", 0),
                ],
            )
            yield journal
        yield from self.compose_bottom()

    def action_reload(self) -> None:
        self.reload()

    async def load(self) -> None:
        reply = await self.ask(control.SkuShow(id=0, code=self.code, journal_limit=JOURNAL_ROWS))
        if isinstance(reply, control.SkuReply):
            self._sku = reply.sku
            self._show(reply.sku)

    def _show(self, sku: control.SkuDetail) -> None:
        labels = self.labels
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column(justify="right")
        head.add_row(labels("sku.title", code=sku.code), sku.name)
        for field in ("expected", "actual", "reserve"):
            value = getattr(sku.stock, field)
            head.add_row(
                labels(f"field.{field}"), Text(str(value), style="red" if value < 0 else "")
            )
        head.add_row("", labels("sku.registered" if sku.stock.registered else "sku.unregistered"))
        if sku.children:
            children = ", ".join(f"{child.code} ×{child.qty}" for child in sku.children)
            head.add_row(labels("sku.children"), children)
        if sku.parents:
            head.add_row(labels("sku.parents"), ", ".join(sku.parents))
        self.query_one("#sku-head", Static).update(head)

        shops = self.query_one("#sku-shops", DataTable)
        shops.clear()
        for shop in sku.shops:
            shops.add_row(
                shop.shop,
                labels("sku.linked" if shop.linked else "sku.unlinked"),
                Text(str(shop.target), justify="right"),
                Text(str(shop.floor), justify="right"),
                Text("-" if shop.pushed is None else str(shop.pushed), justify="right"),
                local_time(shop.pushed_at),
                Text("-" if shop.shown is None else str(shop.shown), justify="right"),
                Text("●", style="yellow") if shop.pending else "",
                key=shop.shop,
            )
        journal = self.query_one("#sku-journal", DataTable)
        journal.clear()
        for row in sku.journal:
            journal.add_row(
                local_time(row.at),
                labels(f"field.{row.field}"),
                Text(f"{row.delta:+d}", justify="right"),
                Text(str(row.after), justify="right"),
                row.reason,
                row.ref,
                row.actor,
                key=str(row.id),
            )

    def daemon_changed(self, event: control.Event) -> None:
        if self._sku is None:
            return
        related = {self.code, *(child.code for child in self._sku.children), *self._sku.parents}
        if isinstance(event, control.StockChanged) and event.stock.code in related:
            self.reload_soon()
        elif isinstance(
            event, control.StockImported | control.ShopChanged | control.ListingsChanged
        ):
            self.reload_soon()

    def action_edit(self) -> None:
        if self._sku is not None:
            self.run_worker(self._edit(self._sku.stock), group="edit", exit_on_error=False)

    async def _edit(self, level: control.StockLevel) -> None:
        labels = self.labels
        edit = await self.app.push_screen_wait(StockEditDialog(labels, level))
        if edit is None:
            return
        field_name = labels(f"field.{edit.field}")
        before = getattr(level, edit.field)
        after = edit.value if edit.how == "set" else before + edit.value
        if edit.how == "set":
            question = labels(
                "edit.confirm", code=level.code, field=field_name, before=before, after=after
            )
        else:
            question = labels(
                "edit.confirm_add",
                code=level.code,
                field=field_name,
                delta=f"{edit.value:+d}",
                before=before,
                after=after,
            )
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        reply = await self.ask(self._stock_request(level.code, edit, before))
        if isinstance(reply, control.StockReply):
            after = getattr(reply.stock, edit.field)
            self.say(labels("edit.done", code=level.code, field=field_name, after=after))
            self.reload()

    @staticmethod
    def _stock_request(
        code: str, edit: StockEdit, seen: int
    ) -> control.StockSet | control.StockAdd:
        if edit.how == "add":
            return control.StockAdd(id=0, code=code, field=edit.field, delta=edit.value)
        # what the operator saw: a sale meanwhile is refused, not overwritten
        return control.StockSet(id=0, code=code, field=edit.field, value=edit.value, if_was=seen)
