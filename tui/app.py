"""``zaiko tui``: the operator's Textual app. ``build_app`` makes it (tests drive it with
``app.run_test()``); one worker runs the link to the daemon (tui/link.py) and the app hands
what it posts to the screens. Each screen of the switcher is a Textual mode (tui/screens/)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import deque
from datetime import UTC, datetime
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.worker import Worker, WorkerState

from daemon.config import Config
from protocols import control
from tui.labels import Labels, Lang
from tui.link import DaemonEvent, DaemonLink, Link, LinkChanged
from tui.screens.base import Reload, localize_bindings
from tui.screens.keys import KeysScreen
from tui.screens.registry import SCREENS

LINK_WORKER = "daemon-link"
OVERSELLS_KEPT = 50


class ZaikoApp(App[None]):
    CSS_PATH = "zaiko.tcss"
    TITLE = "zaiko"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "key.quit"),
        Binding("question_mark", "keys", "key.keys", key_display="?"),
    ]

    link_up: reactive[bool] = reactive(False)
    # one line: whether the daemon is connected and, when not, why and what to do
    link_status: reactive[str] = reactive("")

    def __init__(self, link: Link, labels: Labels) -> None:
        super().__init__()
        self.link = link
        self.labels = labels
        self.screen_entries = SCREENS
        self.title = labels("app.title")
        self.link_status = labels("link.connecting")
        # kept by the app, not a screen: an oversell is news whichever screen is shown
        self.oversells: deque[tuple[str, control.Oversell]] = deque(maxlen=OVERSELLS_KEPT)
        localize_bindings(self, labels)
        for entry in SCREENS:
            self.add_mode(entry.mode, entry.screen)
            self.bind(entry.key, f"switch_screen('{entry.mode}')", description=labels(entry.label))

    def on_mount(self) -> None:
        # a SIGTERM (the demo ending, systemd, kill) ends the app as q does: Textual itself
        # would die with the terminal left in raw mode on the alternate screen
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        self.switch_mode(SCREENS[0].mode)
        self.run_worker(self.link.run(self.post_message), name=LINK_WORKER, exit_on_error=False)

    async def action_switch_screen(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)
            # a screen hears events only while it is shown: what it shows may be old
            self.screen.post_message(Reload())

    def action_keys(self) -> None:
        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen(self.screen.active_bindings, self.labels))

    def on_link_changed(self, message: LinkChanged) -> None:
        self.link_up = message.up
        if message.up:
            self.link_status = self.labels("link.up")
        else:
            self.link_status = f"{self.labels('link.down')}: {message.detail}"
        for screen in self.screen_stack:
            screen.post_message(LinkChanged(message.up, message.detail))

    def on_daemon_event(self, message: DaemonEvent) -> None:
        event = message.event
        if isinstance(event, control.Oversell):
            self.oversells.appendleft((datetime.now(UTC).isoformat(), event))
            self.notify(
                self.labels(
                    "dash.oversell_row",
                    at="",
                    sku=event.sku,
                    expected=event.expected,
                    shop=event.shop,
                    ref=event.ref,
                ).strip(),
                title=self.labels("dash.oversells"),
                severity="error",
                timeout=15,
            )
        for screen in self.screen_stack:
            screen.post_message(DaemonEvent(message.event))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == LINK_WORKER and event.state == WorkerState.ERROR:
            self.link_up = False
            self.link_status = f"{self.labels('link.down')}: {one_line(event.worker.error)}"

    def _handle_exception(self, error: Exception) -> None:
        # Textual ends the app on a bug in a handler and prints its traceback: print one line
        # instead, as the CLI does, unless asked for it (ZAIKO_TRACEBACK=1). Textual's own
        # hook and list; textual is pinned in pyproject.toml.
        super()._handle_exception(error)
        if not os.environ.get("ZAIKO_TRACEBACK"):
            self._exit_renderables[:] = [
                f"zaiko: {self.labels('error.unexpected')} {one_line(error)} "
                "(ZAIKO_TRACEBACK=1 shows where)"
            ]


def one_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    return " ".join(f"{type(error).__name__}: {error}".removesuffix(": ").split())


def build_app(
    config: Config, config_file: str, lang: Lang | None = None, *, link: Link | None = None
) -> ZaikoApp:
    """The app for ``config`` (``config_file`` names it in the hint how to start the daemon);
    ``lang`` overrides ``[tui] lang``; ``link`` replaces the connection (snapshot tests)."""
    return ZaikoApp(
        link if link is not None else DaemonLink(config, config_file),
        Labels(lang or config.tui.lang),
    )
