"""Orders (引当確認受注一覧): the allocation list a page at a time (``orders_list`` with
``after`` and ``limit``), narrowed by shop and by line status, warning and unmatched lines
standing out. Enter opens an order (``OrderScreen``): its lines, applied (``order_apply``) or
dismissed (``order_dismiss``) after a confirmation; an unmatched line is matched to a SKU
first (a listing of the shop, as the daemon's refusal tells the CLI's user), then taken.
The orders that wait while a shop's 受注取込 is 停止 (its backlog) are counted here; they are
taken or skipped on the Shops screen, as its 受注取込 is switched on. Live: ``order_changed``
and the shops' events re-read, debounced."""

from __future__ import annotations

from typing import ClassVar, get_args

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Select, Static

from protocols import control
from tui.labels import Labels
from tui.screens.base import PagedScreen, ZaikoScreen, add_columns, local_time
from tui.screens.dialogs import ConfirmDialog, FormDialog

PAGE = 100
# a reload keeps the pages read so far, up to what one orders_list answers
RELOAD_MAX_ROWS = 1000
ACTIONABLE = "actionable"  # the status filter's default: what waits for the operator
ALL_STATUSES = "all"
# what each line status looks like wherever it is shown
STATUS_STYLES: dict[str, str] = {
    "warning": "bold yellow",
    "unmatched": "bold magenta",
    "pending": "cyan",
    "cancelled": "dim",
    "dismissed": "dim",
    "allocated": "green",
}
# events after which the list, the shops or their backlogs may say something else
ORDER_EVENTS = (
    control.OrderChanged,
    control.ShopChanged,
    control.ListingsChanged,
    control.IntakeChanged,
)


def status_text(labels: Labels, status: str) -> Text:
    return Text(labels.maybe(f"order.status.{status}", status), style=STATUS_STYLES.get(status, ""))


def statuses_of(choice: object) -> tuple[control.OrderStatus, ...]:
    """The statuses ``orders_list`` is asked for, from the status filter's value."""
    if choice == ALL_STATUSES:
        return get_args(control.OrderStatus)
    if choice in get_args(control.OrderStatus):
        return (choice,)  # type: ignore[return-value]
    return control.ACTIONABLE_ORDER_STATUSES


def mall_item(line: control.OrderLineDoc) -> str:
    """The mall's identifiers of a line as they read: item, variation, then chosen options."""
    return " ".join(part for part in (line.item_id, *line.variation, *line.choices) if part)


class OrdersScreen(PagedScreen):
    TABLE = "#orders"
    NEAR_END_ROWS = 20
    MODE = "orders"
    AUTO_FOCUS = "#orders"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "key.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0  # which reload the rows belong to: a page of an older one is dropped
        self._shops: tuple[control.ShopStatus, ...] = ()
        self._shop_ids: list[str] = []  # the shop filter's choices

    def compose(self) -> ComposeResult:
        labels = self.labels
        yield from self.compose_top()
        with Horizontal(id="order-filters"):
            yield Label(labels("order.shop"))
            yield Select[str]([], prompt=labels("order.all_shops"), id="order-shop", compact=True)
            yield Label(labels("order.status"))
            yield Select(
                [
                    (labels("order.actionable"), ACTIONABLE),
                    *((labels(f"order.status.{s}"), s) for s in get_args(control.OrderStatus)),
                    (labels("order.all_statuses"), ALL_STATUSES),
                ],
                value=ACTIONABLE,
                allow_blank=False,
                id="order-status",
                compact=True,
            )
        yield Static("", id="order-backlog")
        table: DataTable[str | Text] = DataTable(id="orders", cursor_type="row", zebra_stripes=True)
        add_columns(
            table,
            labels,
            [
                ("order.shop", 0),
                ("order.no", 0),
                ("order.status", 0),
                ("order.mall_state", 0),
                ("order.ordered", 11),
                ("order.lines", 0),
            ],
        )
        yield table
        yield Static("", id="order-count")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#orders", DataTable)
        self.watch_paging(table)

    def action_reload(self) -> None:
        self.reload()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.reload()

    # --- loading and paging -----------------------------------------------------------

    async def load(self) -> None:
        """The shops (filter, backlogs), then the list again from its start: as many rows as
        were shown, so that a live refresh does not lose the operator's place."""
        status = await self.ask(control.GetStatus(id=0))
        if isinstance(status, control.StatusReply):
            self._shops = status.shops
            self._show_shops()
        table = self.query_one("#orders", DataTable)
        highlighted = self._highlighted_key()
        self._generation += 1
        self._next_after = ""
        self._loading = False
        limit = min(max(PAGE, table.row_count), RELOAD_MAX_ROWS)
        await self.load_page(limit, replace=True)
        if highlighted is not None and highlighted in table.rows:
            table.move_cursor(row=table.get_row_index(highlighted))

    async def load_page(self, limit: int = PAGE, replace: bool = False) -> None:
        """The next page; ``replace``: the first, instead of the rows shown (cleared only
        once it came, so that a refresh does not blank the list meanwhile)."""
        if self._loading or self._next_after is None:
            return
        self._loading = True
        generation = self._generation
        shop = self.query_one("#order-shop", Select).value
        reply = await self.ask(
            control.OrdersList(
                id=0,
                shop=shop if isinstance(shop, str) else "",
                statuses=statuses_of(self.query_one("#order-status", Select).value),
                after=self._next_after,
                limit=limit,
            )
        )
        if generation != self._generation:
            return  # a newer reload cleared the table meanwhile
        self._loading = False
        if not isinstance(reply, control.OrdersReply):
            return
        table = self.query_one("#orders", DataTable)
        if replace:
            table.clear()
        for order in reply.orders:
            if order.key not in table.rows:
                table.add_row(*self._row(order), key=order.key)
        self._next_after = reply.next_after
        self._show_count()

    def _row(self, order: control.OrderDoc) -> list[str | Text]:
        lines = Text()
        for line in order.lines:
            if lines:
                lines.append(", ")
            what = line.sku or f"?{mall_item(line)}"
            lines.append(f"{what}×{line.quantity}", style=STATUS_STYLES.get(line.status, ""))
        return [
            order.shop,
            order.order_no,
            status_text(self.labels, order.status),
            order.mall_state,
            local_time(order.ordered_at, seconds=False),
            lines,
        ]

    def _show_shops(self) -> None:
        """The shop filter's choices (kept while the shops stay the same), and the line that
        says which stopped shops have orders waiting."""
        select = self.query_one("#order-shop", Select)
        ids = [shop.id for shop in self._shops]
        if ids != self._shop_ids:
            self._shop_ids = ids
            chosen = select.value
            with select.prevent(Select.Changed):
                select.set_options([(shop_id, shop_id) for shop_id in ids])
                if chosen in ids:
                    select.value = chosen
        waiting = [shop for shop in self._shops if shop.intake.backlog]
        backlog = self.query_one("#order-backlog", Static)
        backlog.display = bool(waiting)
        if waiting:
            text = Text(self.labels("order.backlog_head"), style="bold yellow")
            for shop in waiting:
                text.append(
                    " "
                    + self.labels(
                        "order.backlog_shop",
                        shop=shop.id,
                        count=shop.intake.backlog,
                        oldest=local_time(shop.intake.backlog_oldest, seconds=False),
                    )
                )
            text.append(" · " + self._backlog_hint(), style="dim")
            backlog.update(text)

    def _backlog_hint(self) -> str:
        """Where the backlog is decided: the Shops screen, named with its key."""
        shops = next((e for e in self.zaiko.screen_entries if e.mode == "shops"), None)
        if shops is None:
            return self.labels("order.backlog_cli")
        key = self.app.get_key_display(Binding(shops.key, ""))
        return self.labels("order.backlog_hint", screen=self.labels(shops.label), key=key)

    def _show_count(self) -> None:
        labels = self.labels
        rows = self.query_one("#orders", DataTable).row_count
        if not rows:
            text = labels("order.none")
        elif self._next_after is not None:
            text = labels("order.more", count=rows)
        else:
            text = labels("order.loaded", count=rows)
        warnings = sum(shop.intake.warnings for shop in self._shops)
        unmatched = sum(shop.intake.unmatched for shop in self._shops)
        self.query_one("#order-count", Static).update(
            f"{text} · {labels('order.waiting', warnings=warnings, unmatched=unmatched)}"
        )

    def _highlighted_key(self) -> str | None:
        table = self.query_one("#orders", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.app.push_screen(OrderScreen(event.row_key.value))

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, ORDER_EVENTS):
            self.reload_soon()


class OrderScreen(ZaikoScreen):
    """One order (``order_show``) with its lines; ``a`` applies it, ``d`` dismisses it, ``m``
    matches the highlighted unmatched line to a SKU. Each asks first."""

    MODE = "orders"
    AUTO_FOCUS = "#order-lines"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "key.back"),
        Binding("a", "apply", "key.apply"),
        Binding("d", "dismiss_order", "key.dismiss"),
        Binding("m", "match", "key.match"),
        Binding("r", "reload", "key.refresh"),
    ]

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.order: control.OrderDoc | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="order-head")
        table: DataTable[str | Text] = DataTable(
            id="order-lines", cursor_type="row", zebra_stripes=True
        )
        add_columns(
            table,
            self.labels,
            [
                ("order.line", 4),
                ("order.item", 0),
                ("order.sku", 0),
                ("order.qty", 4),
                ("order.status", 0),
                ("order.name", 0),
            ],
        )
        yield table
        yield from self.compose_bottom()

    def action_reload(self) -> None:
        self.reload()

    async def load(self) -> None:
        reply = await self.ask(control.OrderShow(id=0, key=self.key))
        if isinstance(reply, control.OrderReply):
            self._show(reply.order)

    def _show(self, order: control.OrderDoc) -> None:
        self.order = order
        labels = self.labels
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        head.add_row(labels("order.title"), order.key)
        head.add_row(labels("order.status"), status_text(labels, order.status))
        head.add_row(labels("order.mall_state"), order.mall_state)
        head.add_row(labels("order.ordered"), local_time(order.ordered_at))
        head.add_row(labels("order.received"), local_time(order.received_at))
        hint = self._hint(order)
        if hint:
            head.add_row("", Text(hint, style="yellow"))
        self.query_one("#order-head", Static).update(head)
        table = self.query_one("#order-lines", DataTable)
        cursor = table.cursor_row
        table.clear()
        for line in order.lines:
            table.add_row(
                Text(str(line.line_no), justify="right"),
                mall_item(line),
                line.sku or "-",
                Text(str(line.quantity), justify="right"),
                status_text(labels, line.status),
                line.name,
                key=str(line.line_no),
            )
        if order.lines:
            table.move_cursor(row=min(cursor, len(order.lines) - 1))

    def _hint(self, order: control.OrderDoc) -> str:
        """What the operator can do with this order now, in one line."""
        statuses = {line.status for line in order.lines}
        hints = []
        if "warning" in statuses:
            hints.append(self.labels("order.hint_warning"))
        if "unmatched" in statuses:
            hints.append(self.labels("order.hint_unmatched"))
        if hints:
            hints.append(self.labels("order.hint_dismiss"))
        return " · ".join(hints)

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, control.OrderChanged) and event.order.key == self.key:
            self._show(event.order)
        elif isinstance(event, control.ListingsChanged | control.ShopChanged):
            self.reload_soon()

    def _highlighted_line(self) -> control.OrderLineDoc | None:
        table = self.query_one("#order-lines", DataTable)
        if self.order is None or not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((line for line in self.order.lines if str(line.line_no) == row_key.value), None)

    # --- apply, dismiss, match --------------------------------------------------------

    def action_apply(self) -> None:
        if self.order is not None:
            self.run_worker(
                self._apply(self.order), group="order", exclusive=True, exit_on_error=False
            )

    def action_dismiss_order(self) -> None:
        if self.order is not None:
            self.run_worker(
                self._dismiss(self.order), group="order", exclusive=True, exit_on_error=False
            )

    def action_match(self) -> None:
        line = self._highlighted_line()
        if line is None or line.status != "unmatched":
            self.say(self.labels("order.match_which"), error=True)
            return
        self.run_worker(self._match(line), group="order", exclusive=True, exit_on_error=False)

    async def _apply(self, order: control.OrderDoc) -> None:
        labels = self.labels
        warnings = sum(line.status == "warning" for line in order.lines)
        unmatched = sum(line.status == "unmatched" for line in order.lines)
        question = labels("order.apply_confirm", key=order.key, warnings=warnings)
        if unmatched:
            question += " " + labels("order.apply_unmatched", unmatched=unmatched)
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        reply = await self.ask(control.OrderApply(id=0, key=order.key))
        if isinstance(reply, control.OrderReply):
            self._show(reply.order)
            status = labels.maybe(f"order.status.{reply.order.status}", reply.order.status)
            self.say(labels("order.applied", key=order.key, status=status))

    async def _dismiss(self, order: control.OrderDoc) -> None:
        labels = self.labels
        question = labels("order.dismiss_confirm", key=order.key)
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        reply = await self.ask(control.OrderDismiss(id=0, key=order.key))
        if isinstance(reply, control.OrderReply):
            self._show(reply.order)
            self.say(labels("order.dismissed", key=order.key))

    async def _match(self, line: control.OrderLineDoc) -> None:
        """The daemon maps a mall item to a SKU by the shop's listings: record one for this
        line's item (a listing of that SKU at the shop, replacing the one it had), and the
        daemon takes the line as the shop's 受注取込 says."""
        labels = self.labels
        if self.order is None:
            return
        shop = self.order.shop
        code = await self.app.push_screen_wait(
            SkuDialog(labels, labels("order.match_title", item=mall_item(line), shop=shop))
        )
        if not code:
            return
        shown = await self.ask(control.SkuShow(id=0, code=code, journal_limit=0))
        if not isinstance(shown, control.SkuReply):
            return  # the notice says why (an unknown SKU)
        listed = next((q for q in shown.sku.shops if q.shop == shop), None)
        question = labels("order.match_confirm", sku=code, item=mall_item(line), shop=shop)
        if listed is not None and listed.item_id:
            was = " ".join((listed.item_id, *listed.variation))
            question += " " + labels("order.match_replaces", sku=code, was=was)
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            return
        # a SKU whose reflection the operator stopped at this shop stays stopped
        row = control.ListingRow(
            sku=code,
            item_id=line.item_id,
            variation=line.variation,
            linked=listed.linked if listed is not None else True,
        )
        reply = await self.ask(control.ListingsImport(id=0, shop=shop, rows=(row,)))
        if isinstance(reply, control.ListingsReply):
            self.say(labels("order.matched", sku=code, item=mall_item(line)))
            self.reload()


class SkuDialog(FormDialog[str]):
    """A SKU code, typed exactly (codes are text: leading zeros and case count)."""

    def __init__(self, labels: Labels, title: str) -> None:
        super().__init__(labels)
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._title, classes="title")
            yield Label(self.labels("order.sku"))
            yield Input(id="sku-code")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#sku-code", Input).focus()

    def submit(self) -> None:
        code = self.query_one("#sku-code", Input).value
        if code:
            self.dismiss(code)
