"""Modal dialogs the screens share: a yes/no confirmation, a stock value, a new SKU, a set
product, a download's options, a file's path.
Each dismisses with its answer, or None when cancelled (escape)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Generic, Literal, NamedTuple, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

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


class FormDialog(Dialog[Answer]):
    """A dialog of fields: OK (or Enter in a field) hands them to ``submit``, which dismisses
    with the answer or says what is wrong; Cancel or escape: None."""

    def compose_buttons(self, ok: str = "ok") -> ComposeResult:
        with Horizontal(classes="buttons"):
            yield Button(self.labels(ok), id="ok", variant="primary")
            yield Button(self.labels("cancel"), id="cancel")

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        raise NotImplementedError


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


class StockEdit(NamedTuple):
    """A change of one count: ``how`` "set" overwrites it with ``value``, "add" adds
    ``value`` to it (negative subtracts), as ``zaiko stock set`` / ``stock add``."""

    field: control.StockField
    how: Literal["set", "add"]
    value: int


class StockEditDialog(FormDialog[StockEdit]):
    """Which of 想定在庫数 / 実在庫数 / 保留在庫数 to change, whether to overwrite it or add to
    it, and the value (Enter in the value)."""

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
            yield Label(self.labels("edit.how"))
            yield Select(
                [(self.labels("edit.how.set"), "set"), (self.labels("edit.how.add"), "add")],
                value="set",
                allow_blank=False,
                id="how",
            )
            yield Label(self.labels("edit.value"), id="value-label")
            yield Input(str(self._level.expected), id="value", type="integer")
            yield Static("", id="dialog-error", classes="error")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        field = self.query_one("#field", Select).value
        adding = self.query_one("#how", Select).value == "add"
        self.query_one("#value-label", Label).update(
            self.labels("edit.delta" if adding else "edit.value")
        )
        if isinstance(field, str):
            # overwriting starts from the count as it is; adding from nothing added
            self.query_one("#value", Input).value = (
                "0" if adding else str(getattr(self._level, field))
            )

    def submit(self) -> None:
        field = self.query_one("#field", Select).value
        how = "add" if self.query_one("#how", Select).value == "add" else "set"
        text = self.query_one("#value", Input).value.strip()
        try:
            value = int(text)
        except ValueError:
            self.query_one("#dialog-error", Static).update(self.labels("edit.not_a_number"))
            return
        if field in ("expected", "actual", "reserve"):
            self.dismiss(StockEdit(field, how, value))  # type: ignore[arg-type]


class SkuAddDialog(FormDialog[control.SkuAdd]):
    """商品登録: a new SKU's code, name and 保留在庫数, as ``zaiko sku add`` takes them."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.labels("sku_add.title"), classes="title")
            yield Label(self.labels("stock.code"))
            yield Input(id="sku-code")
            yield Label(self.labels("stock.name"))
            yield Input(id="sku-name")
            yield Label(self.labels("field.reserve"))
            yield Input("0", id="sku-reserve", type="integer")
            yield Static("", id="dialog-error", classes="error")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#sku-code", Input).focus()

    def submit(self) -> None:
        error = self.query_one("#dialog-error", Static)
        # the code as typed: the daemon refuses spaces around it rather than trim them
        code = self.query_one("#sku-code", Input).value
        if not code:
            error.update(self.labels("sku_add.no_code"))
            return
        try:
            reserve = int(self.query_one("#sku-reserve", Input).value.strip() or "0")
        except ValueError:
            error.update(self.labels("edit.not_a_number"))
            return
        name = self.query_one("#sku-name", Input).value.strip()
        self.dismiss(control.SkuAdd(id=0, code=code, name=name, reserve=reserve))


def parse_children(text: str) -> tuple[control.SetChild, ...] | int:
    """A set's children, one ``CODE:QTY`` a line (codes may hold spaces and commas, never a
    line end), as ``zaiko sets add --child CODE:QTY``; else the number of the first line
    that is not of that form."""
    children = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        code, sep, qty = line.strip().rpartition(":")
        if not sep or not code or not qty.strip().isdigit():
            return number
        children.append(control.SetChild(code=code.strip(), qty=int(qty)))
    return tuple(children)


class SetAddDialog(FormDialog[control.SetAdd]):
    """セット商品: the parent's code and name, and its children with a quantity each, one
    ``CODE:QTY`` a line (Enter starts a new line; OK, or Tab to it, sends)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.labels("set_add.title"), classes="title")
            yield Label(self.labels("set_add.parent"))
            yield Input(id="set-parent")
            yield Label(self.labels("stock.name"))
            yield Input(id="set-name")
            yield Label(self.labels("set_add.children"))
            yield TextArea(id="set-children", soft_wrap=False, show_line_numbers=True)
            yield Static("", id="dialog-error", classes="error")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#set-parent", Input).focus()

    def on_input_submitted(self) -> None:
        self.focus_next()

    def submit(self) -> None:
        error = self.query_one("#dialog-error", Static)
        parent = self.query_one("#set-parent", Input).value
        if not parent:
            error.update(self.labels("sku_add.no_code"))
            return
        children = parse_children(self.query_one("#set-children", TextArea).text)
        if isinstance(children, int):
            error.update(self.labels("set_add.bad_line", line=children))
            return
        if not children:
            error.update(self.labels("set_add.no_children"))
            return
        name = self.query_one("#set-name", Input).value.strip()
        self.dismiss(control.SetAdd(id=0, parent=parent, children=children, name=name))


class PathDialog(FormDialog[Path]):
    """A file's path, typed (``~`` is the home directory): ``title`` and ``button`` are
    label ids."""

    def __init__(self, labels: Labels, title: str, button: str) -> None:
        super().__init__(labels)
        self._title = title
        self._button = button

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.labels(self._title), classes="title")
            yield Label(self.labels("path.label"))
            yield Input(id="path")
            yield from self.compose_buttons(self._button)

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def submit(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        if path:
            self.dismiss(Path(path).expanduser())


class DownloadChoice(NamedTuple):
    path: Path
    target: control.ExportTarget = "expected"
    encoding: str = "cp932"


class DownloadDialog(FormDialog[DownloadChoice]):
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
            yield from self.compose_buttons("key.save")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def submit(self) -> None:
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
