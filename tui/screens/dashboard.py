"""Dashboard: every shop at a glance (``status``), the highlighted shop in detail, and the
oversells (``oversell`` events) seen since the TUI opened (the app keeps them). Live: events
that change what ``status`` says re-read it, debounced."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from protocols import control
from tui.screens.base import ZaikoScreen, add_columns, local_time

# events after which ``status`` says something else
STATUS_EVENTS = (
    control.ShopChanged,
    control.ListingsChanged,
    control.IntakeChanged,
    control.ActorChanged,
    control.ReflectChanged,
    control.PushesPending,
    control.OrderChanged,
    control.JobChanged,
    control.StockImported,
    control.Oversell,
    control.AuditRequested,
)


def shop_errors(shop: control.ShopStatus) -> list[str]:
    """Each error a shop reports now, as ``where: what``."""
    errors = [f"{actor.name}: {actor.last_error}" for actor in shop.actors if actor.last_error]
    if shop.intake.last_error:
        errors.append(f"intake: {shop.intake.last_error}")
    if shop.reflection.last_error:
        errors.append(f"reflect: {shop.reflection.last_error}")
    return errors


class DashboardScreen(ZaikoScreen):
    MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "key.refresh")]

    def __init__(self) -> None:
        super().__init__()
        self._status: control.StatusReply | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="summary")
        table: DataTable[str | Text] = DataTable(id="shops", cursor_type="row", zebra_stripes=True)
        add_columns(
            table,
            self.labels,
            [
                # ids are short; a longer one is whole in the detail below
                ("dash.shop", 16),
                ("dash.intake", 0),
                ("dash.reflect", 0),
                ("dash.actors", 0),
                ("dash.last_intake", 11),
                ("dash.last_push", 11),
                ("dash.pending", 0),
                ("dash.drift", 0),
                ("dash.errors", 0),
                ("dash.backlog", 0),
                ("dash.quarantined", 0),
                ("dash.unmatched", 0),
            ],
        )
        yield table
        with Vertical(id="panels"):
            yield Static("", id="shop-detail")
            yield Static("", id="oversells")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        super().on_mount()
        self._show_oversells()

    def action_reload(self) -> None:
        self.reload()

    async def load(self) -> None:
        self._show_oversells()  # some may have come while another screen was shown
        status = await self.ask(control.GetStatus(id=0))
        if isinstance(status, control.StatusReply):
            self._status = status
            self._show(status)

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, control.Oversell):
            self._show_oversells()  # the app keeps them, whichever screen was shown
        if isinstance(event, STATUS_EVENTS):
            self.reload_soon()

    def _show(self, status: control.StatusReply) -> None:
        labels = self.labels
        self.query_one("#summary", Static).update(
            labels(
                "dash.summary",
                skus=status.skus,
                shops=len(status.shops),
                oversells=status.oversells,
                version=status.version,
            )
        )
        table = self.query_one("#shops", DataTable)
        highlighted = self._highlighted_shop()
        table.clear()
        for shop in status.shops:
            table.add_row(*self._row(shop), key=shop.id)
        if not status.shops:
            self.query_one("#shop-detail", Static).update(labels("dash.no_shops"))
            return
        ids = [shop.id for shop in status.shops]
        table.move_cursor(row=ids.index(highlighted) if highlighted in ids else 0)
        self._show_detail()

    def _row(self, shop: control.ShopStatus) -> list[str | Text]:
        running = sum(actor.state == "running" for actor in shop.actors)
        healthy = running == len(shop.actors)
        actors = Text(f"{running}/{len(shop.actors)}", style="" if healthy else "bold red")
        errors = shop_errors(shop)
        pending = str(shop.reflection.pending)
        if shop.reflection.urgent:
            pending += f" (!{shop.reflection.urgent})"
        return [
            shop.id,
            self._mode(shop.order_intake),
            self._mode(shop.reflect),
            actors,
            local_time(shop.intake.last_intake, seconds=False),
            local_time(shop.reflection.last_push, seconds=False),
            pending,
            str(shop.audit.drift) if shop.audit.job else "-",
            Text(str(len(errors)), style="bold red" if errors else ""),
            str(shop.intake.backlog),
            Text(str(shop.intake.quarantined), style="yellow" if shop.intake.quarantined else ""),
            Text(str(shop.intake.unmatched), style="yellow" if shop.intake.unmatched else ""),
        ]

    def _mode(self, mode: str) -> Text:
        style = {"active": "green", "suspended": "yellow", "stopped": "dim"}.get(mode, "")
        return Text(self.labels.maybe(f"mode.{mode}", mode), style=style)

    def _highlighted_shop(self) -> str | None:
        table = self.query_one("#shops", DataTable)
        if self._status is None or not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def _show_detail(self) -> None:
        shop_id = self._highlighted_shop()
        if self._status is None or shop_id is None:
            return
        shop = next((s for s in self._status.shops if s.id == shop_id), None)
        if shop is None:
            return
        labels = self.labels
        detail = Table.grid(padding=(0, 1))
        detail.add_column(style="bold")
        detail.add_column()
        detail.add_row(labels("dash.detail", shop=shop.id), shop.mall)
        for actor in shop.actors:
            state = labels.maybe(f"actor.{actor.state}", actor.state)
            row = labels("dash.actor_row", name=actor.name, state=state, restarts=actor.restarts)
            style = "" if actor.state == "running" else "red"
            detail.add_row(labels("dash.actors"), Text(row, style=style))
        for error in shop_errors(shop):
            detail.add_row(labels("dash.errors"), Text(error, style="red"))
        for warning in shop.warnings:
            detail.add_row("!", Text(warning, style="yellow"))
        if shop.intake.backlog:
            oldest = local_time(shop.intake.backlog_oldest)
            detail.add_row(labels("dash.backlog"), f"{shop.intake.backlog} ({oldest})")
        if shop.audit.job:
            audit = shop.audit
            detail.add_row(
                labels("dash.drift"),
                labels(
                    "dash.audit",
                    at=local_time(audit.at),
                    checked=audit.checked,
                    drift=audit.drift,
                    pending=audit.pending,
                ),
            )
        self.query_one("#shop-detail", Static).update(detail)

    def _show_oversells(self) -> None:
        labels = self.labels
        lines = Text(labels("dash.oversells"), style="bold")
        if not self.zaiko.oversells:
            lines.append("\n" + labels("dash.no_oversells"), style="dim")
        for at, event in self.zaiko.oversells:
            row = labels(
                "dash.oversell_row",
                at=local_time(at),
                sku=event.sku,
                expected=event.expected,
                shop=event.shop,
                ref=event.ref,
            )
            lines.append("\n" + row, style="bold red")
        self.query_one("#oversells", Static).update(lines)
