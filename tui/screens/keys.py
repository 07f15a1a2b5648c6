"""``?``: every key of the screen below, with what it does (the Footer shows only some)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.labels import Labels


class KeysScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", show=False),
        Binding("question_mark", "dismiss", show=False),
    ]

    def __init__(self, bindings: dict[str, ActiveBinding], labels: Labels) -> None:
        super().__init__()
        self._active = bindings
        self._labels = labels

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._labels("keys.title"), classes="title")
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_column(self._labels("keys.key"), key="key")
            table.add_column(self._labels("keys.action"), key="action")
            for active in self._active.values():
                if active.binding.description:
                    table.add_row(
                        self.app.get_key_display(active.binding), active.binding.description
                    )
            yield table
