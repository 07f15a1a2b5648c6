"""The Shops screen's dialogs: the activation guard's list with "force", the backlog choice
(take / skip) when order intake is switched on, and a reflect-now dry run to confirm. Each
dismisses with its answer, or None when cancelled (escape)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from protocols import control
from tui.labels import Labels
from tui.screens.base import add_columns
from tui.screens.dialogs import Dialog

COUNT_WIDTH = 6


class GuardDialog(Dialog[bool]):
    """Switching reflect on was refused: linked SKUs never had stock registered and would be
    pushed 0. The daemon's message and its list of them; True: send again with force."""

    def __init__(self, labels: Labels, error: control.Error) -> None:
        super().__init__(labels)
        self._error = error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.labels("guard.title"), classes="title")
            yield Static(self._error.message, classes="question")
            yield Static("\n".join(self._error.details), id="guard-skus")
            with Horizontal(classes="buttons"):
                yield Button(self.labels("guard.force"), id="force", variant="error")
                yield Button(self.labels("cancel"), id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "force")


class BacklogDialog(Dialog[control.BacklogChoice]):
    """Order intake is switched on while orders waited (the daemon's message says how many,
    since when): take them, or skip what arrived while intake was stopped."""

    def __init__(self, labels: Labels, message: str) -> None:
        super().__init__(labels)
        self._message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.labels("backlog.title"), classes="title")
            yield Static(self._message, classes="question")
            yield Static(self.labels("backlog.explain"))
            with Horizontal(classes="buttons"):
                yield Button(self.labels("backlog.take"), id="take", variant="warning")
                yield Button(self.labels("backlog.skip"), id="skip", variant="warning")
                yield Button(self.labels("cancel"), id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        match event.button.id:
            case "take":
                self.dismiss("take")
            case "skip":
                self.dismiss("skip")
            case _:
                self.dismiss(None)


class ReflectDialog(Dialog[bool]):
    """A reflect-now dry run: per SKU what the shop was last sent → what it would be sent
    now, with the formula's inputs; True: send them now. ``can_send`` False (reflect is
    stopped): only shown, the daemon would refuse to send."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "send", show=False)]

    def __init__(self, labels: Labels, reply: control.ReflectReply, can_send: bool) -> None:
        super().__init__(labels)
        self._reply = reply
        self._can_send = can_send

    def compose(self) -> ComposeResult:
        labels = self.labels
        reply = self._reply
        with Vertical(classes="dialog wide"):
            yield Static(labels("reflect.title", shop=reply.shop), classes="title")
            summary = labels("reflect.pending", pending=reply.pending, shown=len(reply.rows))
            if not reply.complete:
                summary += " " + labels("reflect.incomplete")
            yield Static(summary)
            table: DataTable[str | Text] = DataTable(id="reflect-rows", cursor_type="row")
            add_columns(
                table,
                labels,
                [
                    ("stock.code", 0),
                    ("reflect.change", 0),
                    ("field.expected", COUNT_WIDTH),
                    ("field.reserve", COUNT_WIDTH),
                    ("setting.distribution_rate", COUNT_WIDTH),
                    ("sku.floor", COUNT_WIDTH),
                    ("sku.shown", COUNT_WIDTH),
                    ("reflect.urgent", 0),
                ],
            )
            for row in reply.rows:
                before = "-" if row.pushed is None else str(row.pushed)
                table.add_row(
                    row.sku,
                    Text(f"{before} → {row.target}", justify="right"),
                    Text(str(row.expected), justify="right"),
                    Text(str(row.reserve), justify="right"),
                    Text(str(row.rate), justify="right"),
                    Text(str(row.floor), justify="right"),
                    Text("-" if row.shown is None else str(row.shown), justify="right"),
                    Text("!", style="bold yellow") if row.urgent else "",
                    key=row.sku,
                )
            yield table
            if not self._can_send:
                yield Static(labels("reflect.stopped"), classes="error")
            with Horizontal(classes="buttons"):
                yield Button(
                    f"{labels('reflect.send')} (y)",
                    id="send",
                    variant="warning",
                    disabled=not self._can_send,
                )
                yield Button(labels("cancel"), id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()
        else:
            self.dismiss(None)

    def action_send(self) -> None:
        if self._can_send:
            self.dismiss(True)
