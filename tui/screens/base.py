"""What every screen has: the tabs of the switcher, a notice line, the link's status line and
the Footer; requests through the app's link with a refusal said in one line; events from the
link (``daemon_changed``), reloads when the link comes up, on ``Resync`` and when switched to, and a
debounced reload for screens that re-read on events."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static, Tab, Tabs
from textual.worker import Worker, WorkerState

from cli.client import ClientError
from protocols import control
from tui.labels import Labels
from tui.link import DaemonEvent, LinkChanged

if TYPE_CHECKING:
    from tui.app import ZaikoApp

DEBOUNCE_S = 0.5  # events may come by the thousand: re-read at most twice a second


class Reload(Message):
    """Re-read what the screen shows (it was switched to)."""


def localize_bindings(node: DOMNode, labels: Labels) -> None:
    """Bindings are declared with label ids as descriptions; show them in the app's language.
    (A node's own copy of its bindings, ``_bindings``: Textual has no public way to set a
    binding's description per instance; textual is pinned in pyproject.toml.)"""
    # a new list per key: the copy Textual makes per node shares the class's lists, and an
    # app in one language would relabel every later app's keys
    key_to_bindings = node._bindings.key_to_bindings
    for key, bindings in key_to_bindings.items():
        key_to_bindings[key] = [
            dataclasses.replace(binding, description=labels(binding.description))
            if binding.description
            else binding
            for binding in bindings
        ]


def local_time(iso: str, seconds: bool = True) -> str:
    """An ISO time of the daemon (UTC) in this machine's time zone; "-" for none."""
    if not iso:
        return "-"
    try:
        shown = datetime.fromisoformat(iso).astimezone()
        return shown.strftime("%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")
    except ValueError:
        return iso


def add_columns(table: DataTable[Any], labels: Labels, columns: list[tuple[str, int]]) -> None:
    """Columns keyed by label id; a width > 0 is at least that many cells and never narrower
    than the header (full-width text takes two cells a character); 0: as wide as the content."""
    for label_id, width in columns:
        header = labels(label_id)
        table.add_column(
            header, key=label_id, width=max(width, cell_len(header)) if width else None
        )


class ScreenTabs(Tabs, can_focus=False):
    """The switcher as tabs: click one, or press its key (the Footer shows them)."""


class ZaikoScreen(Screen[None]):
    # the mode this screen is the base of; pushed screens (a SKU, a job) keep their base's
    MODE: ClassVar[str] = ""

    @property
    def zaiko(self) -> ZaikoApp:
        from tui.app import ZaikoApp

        assert isinstance(self.app, ZaikoApp)
        return self.app

    @property
    def labels(self) -> Labels:
        return self.zaiko.labels

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None

    def on_mount(self) -> None:
        localize_bindings(self, self.labels)
        self.watch(self.zaiko, "link_status", self._show_link_status)
        if self.zaiko.link_up:
            self.reload()

    def compose_top(self) -> ComposeResult:
        yield Header()
        tabs = [Tab(self.labels(entry.label), id=entry.mode) for entry in self.zaiko.screen_entries]
        yield ScreenTabs(*tabs, active=self.MODE or None)

    def compose_bottom(self) -> ComposeResult:
        yield Static("", id="notice")
        yield Static("", id="link-status")
        yield Footer()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id and event.tab.id != self.MODE:
            self.run_worker(self.zaiko.action_switch_screen(event.tab.id))

    def _show_link_status(self, status: str) -> None:
        line = self.query_one("#link-status", Static)
        line.update(Text(status))  # the daemon's words are not markup ([control] listen)
        line.set_class(not self.zaiko.link_up, "down")

    def say(self, text: str, error: bool = False) -> None:
        """One line under the screen's content: what happened, or why not."""
        notice = self.query_one("#notice", Static)
        notice.update(Text(text))
        notice.set_class(error, "error")

    async def ask(self, request: Any) -> Any:
        """The reply to ``request``, or None when it was refused or could not be sent: then
        the notice line says why."""
        try:
            return await self.zaiko.link.request(request)
        except ClientError as exc:
            self.say(" ".join(str(exc).split()), error=True)
            return None

    # --- reloading -------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read everything the screen shows (in a worker; a newer reload replaces it)."""
        self.run_worker(self.load, group="reload", exclusive=True, exit_on_error=False)

    async def load(self) -> None:
        """What ``reload`` runs: the screen's requests and their display."""

    def reload_soon(self) -> None:
        if self._debounce is None:
            self._debounce = self.set_timer(DEBOUNCE_S, self._reload_now)

    def _reload_now(self) -> None:
        self._debounce = None
        self.reload()

    def on_reload(self, message: Reload) -> None:
        message.stop()
        if self.zaiko.link_up:
            self.reload()

    def on_link_changed(self, message: LinkChanged) -> None:
        message.stop()
        if message.up:
            self.say("")
            self.reload()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        message.stop()
        if isinstance(message.event, control.Resync):
            self.reload()
        else:
            self.daemon_changed(message.event)

    def daemon_changed(self, event: control.Event) -> None:
        """An event of the daemon while this screen is shown (its reloads see the rest)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            from tui.app import one_line

            self.say(f"{self.labels('error.unexpected')}: {one_line(event.worker.error)}", True)


class PagedScreen(ZaikoScreen):
    """A screen whose table (``TABLE``) is read a page at a time: the next page (``load_page``)
    when the cursor or the scroll comes within ``NEAR_END_ROWS`` of the end; ``next_after``
    None: the last page was read."""

    TABLE: ClassVar[str] = ""
    NEAR_END_ROWS: ClassVar[int] = 20

    def __init__(self) -> None:
        super().__init__()
        self._next_after: str | None = ""
        self._loading = False

    def watch_paging(self, table: DataTable[Any]) -> None:
        self.watch(table, "scroll_y", self._scrolled, init=False)

    async def load_page(self) -> None:
        """Read the page after ``_next_after`` and add it to the table."""

    def _load_more(self) -> None:
        if not self._loading and self._next_after:
            self.run_worker(self.load_page(), group="page", exit_on_error=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.cursor_row >= event.data_table.row_count - self.NEAR_END_ROWS:
            self._load_more()

    def _scrolled(self, scroll_y: float) -> None:
        table = self.query_one(self.TABLE, DataTable)
        if scroll_y >= table.max_scroll_y - self.NEAR_END_ROWS:
            self._load_more()
