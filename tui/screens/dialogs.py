"""Modal dialogs the screens share: a yes/no confirmation, a stock value, a download's options.
Each dismisses with its answer, or None when cancelled (escape)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Generic, NamedTuple, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from protocols import control
from tui.labels import Labels

Answer = TypeVar("Answer")


class Dialog(ModalScreen[Answer | None], Generic[Answer]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", show=False)]

    def __init__(self, labels: Labels) -> None:
        super().__init__()
        self.labels = labels

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(Dialog[bool]):
    """A question; Enter or y: yes, n or escape: no (the default button is No)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", show=False),
        Binding("n", "answer(False)", show=False),
    ]

    def __init__(self, labels: Labels, question: str) -> None:
        super().__init__(labels)
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.labels('yes')} (y)", id="yes", variant="warning")
                yield Button(f"{self.labels('no')} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class StockEditDialog(Dialog[tuple[control.StockField, int]]):
    """Which of 想定在庫数 / 実在庫数 / 保留在庫数 to set, and to what (Enter in the value)."""

    def __init__(self, labels: Labels, level: control.StockLevel) -> None:
        super().__init__(labels)
        self._level = level

    def compose(self) -> ComposeResult:
        fields: list[tuple[str, control.StockField]] = [
            (self.labels(f"field.{name}"), name) for name in ("expected", "actual", "reserve")
        ]
        with Vertical(classes="dialog"):
            yield Static(self.labels("edit.title", code=self._level.code), classes="title")
            yield Label(self.labels("edit.field"))
            yield Select(fields, value="expected", allow_blank=False, id="field")
            yield Label(self.labels("edit.value"))
            yield Input(str(self._level.expected), id="value", type="integer")
            yield Static("", id="dialog-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.labels("ok"), id="ok", variant="primary")
                yield Button(self.labels("cancel"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#value", Input).value = str(getattr(self._level, event.value))

    def on_input_submitted(self) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        field = self.query_one("#field", Select).value
        text = self.query_one("#value", Input).value.strip()
        try:
            value = int(text)
        except ValueError:
            self.query_one("#dialog-error", Static).update(self.labels("edit.not_a_number"))
            return
        if field in ("expected", "actual", "reserve"):
            self.dismiss((field, value))  # type: ignore[arg-type]


class DownloadChoice(NamedTuple):
    path: Path
    target: control.ExportTarget = "expected"
    encoding: str = "cp932"


class DownloadDialog(Dialog[DownloadChoice]):
    """A stock download (在庫ダウンロード): what, which encoding, and the file to save it to;
    ``export`` False: only the path, for a download that was already made."""

    def __init__(self, labels: Labels, default_path: Path, export: bool = True) -> None:
        super().__init__(labels)
        self._default_path = default_path
        self._export = export

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.labels("download.title"), classes="title")
            if self._export:
                yield Label(self.labels("download.target"))
                yield Select(
                    [
                        (self.labels("download.target.expected"), "expected"),
                        (self.labels("download.target.both"), "both"),
                    ],
                    value="expected",
                    allow_blank=False,
                    id="target",
                )
                yield Label(self.labels("download.encoding"))
                yield Select(
                    [("cp932 (Shift_JIS)", "cp932"), ("UTF-8", "utf-8")],
                    value="cp932",
                    allow_blank=False,
                    id="encoding",
                )
            yield Label(self.labels("download.path"))
            yield Input(str(self._default_path), id="path")
            with Horizontal(classes="buttons"):
                yield Button(self.labels("key.save"), id="ok", variant="primary")
                yield Button(self.labels("cancel"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_input_submitted(self) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        if not path:
            return
        choice = DownloadChoice(Path(path).expanduser())
        if self._export:
            target = self.query_one("#target", Select).value
            encoding = self.query_one("#encoding", Select).value
            choice = choice._replace(
                target="both" if target == "both" else "expected", encoding=str(encoding)
            )
        self.dismiss(choice)
