"""Import (在庫一括更新 and 商品登録): a file picked in a directory tree or typed, the options
of ``import_start`` (kind, format, encoding, target, mode, shop; the choices are the
protocol's and the mall registry's, as the CLI's), then ``p`` a dry run whose before → after
rows are shown, ``a`` the same file for real once previewed, or ``i`` for real at once. The
upload's progress is counted in acknowledged bytes; the result lists each failed line (line,
code, field, reason) as the seed's スケジュール一覧 does.

A third kind, a shop's listing overrides (``zaiko listings import FILE --shop S``), is no
upload: the file is read here as the CLI reads it (``protocols.listings.read_listings``) and
its rows are sent as ``listings_import``, all or none; ``p`` only reads it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, ClassVar, cast, get_args

import msgspec
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    DirectoryTree,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
)

from cli.client import ClientError, RequestFailed
from cli.main import LISTINGS_PER_FRAME
from protocols import control
from protocols.listings import read_listings
from protocols.malls import capabilities
from protocols.malls.base import RowError
from tui.labels import Labels
from tui.screens.base import ZaikoScreen, add_columns
from tui.screens.dialogs import ConfirmDialog
from tui.upload import Change, read_job, send_file

# what this screen uploads; an ``audit`` upload compares a shop's file and imports nothing
KINDS: tuple[control.ImportKind, ...] = tuple(
    kind for kind in get_args(control.ImportKind) if kind != "audit"
)
LISTINGS = "listings"  # the kind that is no upload: a shop's listing overrides
ENCODINGS = (("cp932 (Shift_JIS)", "cp932"), ("UTF-8", "utf-8"))
NOTES_SHOWN = 5  # a job's other lines (refusals, notes) under its counts
DETAILS_SHOWN = 10  # a refused listings import's rows, each with its reason
# the daemon numbers a refused listing row within its frame: "row 3: unknown SKU"
REFUSED_ROW = re.compile(r"^row (\d+)")
COUNT_WIDTH = 8


def format_choices(labels: Labels) -> list[tuple[str, str]]:
    """TEMPOSTAR's format, then each mall's files as ``check_import`` knows them."""
    return [
        (labels("import.format.tempostar"), "tempostar"),
        *(
            (f"{cap.name_ja} {file_format}", file_format)
            for cap in capabilities().values()
            for file_format in cap.import_formats
        ),
    ]


def read_listing_file(path: Path, encoding: str) -> list[control.ListingRow | RowError]:
    """A listings CSV's rows and unreadable lines, as ``zaiko listings import`` reads it."""
    with path.open("rb") as handle:
        return list(read_listings(handle, encoding))


class FileTree(DirectoryTree):
    """The directory tree without hidden entries (.git, .venv: never a file to import)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")]


class ImportScreen(ZaikoScreen):
    MODE = "import"
    # the tree: letters typed in the path's input would not reach the screen's keys
    AUTO_FOCUS = "#import-tree"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "preview", "key.preview"),
        Binding("a", "apply", "key.apply_import"),
        Binding("i", "import_now", "key.import_now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shop_ids: list[str] = []
        self._busy = False  # an upload or its apply runs: one at a time
        # the file and options of the last dry run, applied as they were by ``a``
        self._previewed: tuple[Path, control.ImportStart, control.Job] | None = None

    def compose(self) -> ComposeResult:
        labels = self.labels
        yield from self.compose_top()
        with Horizontal(id="import-pick"):
            with Vertical(id="import-files"):
                yield Input(placeholder=labels("import.path"), id="import-path", compact=True)
                yield FileTree(Path.cwd(), id="import-tree")
            with VerticalScroll(id="import-options"):
                yield from self._option(
                    "import.kind",
                    Select(
                        [(labels(f"import.kind.{kind}"), kind) for kind in (*KINDS, LISTINGS)],
                        value="stock",
                        allow_blank=False,
                        id="import-kind",
                        compact=True,
                    ),
                )
                yield from self._option(
                    "import.format",
                    Select(
                        format_choices(labels),
                        value="tempostar",
                        allow_blank=False,
                        id="import-format",
                        compact=True,
                    ),
                )
                yield from self._option(
                    "download.encoding",
                    Select(
                        ENCODINGS,
                        value="cp932",
                        allow_blank=False,
                        id="import-encoding",
                        compact=True,
                    ),
                )
                yield from self._option(
                    "import.target",
                    Select(
                        [
                            (labels(f"field.{target}"), target)
                            for target in get_args(control.ImportTarget)
                        ],
                        value="expected",
                        allow_blank=False,
                        id="import-target",
                        compact=True,
                    ),
                )
                yield from self._option(
                    "import.mode",
                    Select(
                        [
                            (labels(f"import.mode.{mode}"), mode)
                            for mode in get_args(control.ImportMode)
                        ],
                        value="overwrite",
                        allow_blank=False,
                        id="import-mode",
                        compact=True,
                    ),
                )
                yield from self._option(
                    "order.shop",
                    Select[str](
                        [], prompt=labels("import.no_shop"), id="import-shop", compact=True
                    ),
                )
                yield Checkbox(labels("import.all_or_nothing"), id="all-or-nothing", compact=True)
                yield Checkbox(labels("import.allow_negative"), id="allow-negative", compact=True)
                with Horizontal(classes="import-buttons"):
                    yield Button(
                        labels("key.preview"), id="preview", variant="primary", compact=True
                    )
                    yield Button(
                        labels("key.apply_import"), id="apply", disabled=True, compact=True
                    )
                    yield Button(labels("key.import_now"), id="import-now", compact=True)
        with Vertical(id="import-result"):
            yield Static(labels("import.pick"), id="import-phase")
            yield ProgressBar(total=1, show_eta=False, id="import-progress")
            yield Static("", id="import-summary")
            yield Static(labels("import.failed_rows"), classes="import-section", id="failed-title")
            failures: DataTable[str | Text] = DataTable(id="import-failures", cursor_type="row")
            add_columns(
                failures,
                labels,
                [
                    ("import.line", 5),
                    ("stock.code", 0),
                    ("import.field", 0),
                    ("import.reason", 0),
                ],
            )
            yield failures
            yield Static(labels("import.changes"), classes="import-section", id="changes-title")
            preview: DataTable[str | Text] = DataTable(
                id="import-preview", cursor_type="row", zebra_stripes=True
            )
            add_columns(
                preview,
                labels,
                [
                    ("import.line", 5),
                    ("stock.code", 0),
                    ("import.field", 0),
                    ("import.before", COUNT_WIDTH),
                    ("import.after", COUNT_WIDTH),
                    ("field.reserve", 0),
                ],
            )
            yield preview
        yield from self.compose_bottom()

    def _option(self, label_id: str, select: Select[str]) -> ComposeResult:
        with Horizontal(classes="import-option"):
            yield Label(self.labels(label_id))
            yield select

    def on_mount(self) -> None:
        super().on_mount()
        for selector in ("#failed-title", "#import-failures", "#changes-title", "#import-preview"):
            self.query_one(selector).display = False

    async def load(self) -> None:
        """The shops a mall file's item ids are mapped through."""
        status = await self.ask(control.GetStatus(id=0))
        if not isinstance(status, control.StatusReply):
            return
        ids = [shop.id for shop in status.shops]
        if ids != self._shop_ids:
            self._shop_ids = ids
            select = self.query_one("#import-shop", Select)
            chosen = select.value
            select.set_options([(shop_id, shop_id) for shop_id in ids])
            if chosen in ids:
                select.value = chosen

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, control.ShopChanged):
            self.reload_soon()

    # --- the file and the options -----------------------------------------------------

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.query_one("#import-path", Input).value = str(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            return
        typed = Path(event.value.strip()).expanduser()
        if typed.is_dir():
            self.query_one("#import-tree", DirectoryTree).path = typed.resolve()
        else:
            self.query_one("#preview", Button).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "import-kind":
            # a product registration sets names and listings, no count; a listings file has
            # its own columns, and all its rows go in or none
            countless = event.value in ("catalog", LISTINGS)
            for selector in ("#import-target", "#import-mode", "#allow-negative"):
                self.query_one(selector).disabled = countless
            for selector in ("#import-format", "#all-or-nothing"):
                self.query_one(selector).disabled = event.value == LISTINGS

    def _value(self, selector: str) -> str:
        chosen = self.query_one(selector, Select).value
        return chosen if isinstance(chosen, str) else ""

    def _path(self) -> Path | None:
        """The typed or picked file (the notice says so when there is none)."""
        typed = self.query_one("#import-path", Input).value.strip()
        if not typed:
            self.say(self.labels("import.no_file"), error=True)
            return None
        return Path(typed).expanduser()

    def _chosen(self, dry_run: bool) -> tuple[Path, control.ImportStart] | None:
        """The typed or picked file and the options, as ``import_start`` takes them."""
        path = self._path()
        if path is None:
            return None
        value = self._value
        kind = value("#import-kind")
        start = control.ImportStart(
            id=0,
            kind="catalog" if kind == "catalog" else "stock",
            format=value("#import-format"),
            encoding=value("#import-encoding"),
            target="actual" if value("#import-target") == "actual" else "expected",
            mode=cast(control.ImportMode, value("#import-mode")),
            dry_run=dry_run,
            all_or_nothing=self.query_one("#all-or-nothing", Checkbox).value,
            shop=value("#import-shop"),
            file_name=path.name,
            allow_negative=kind == "stock" and self.query_one("#allow-negative", Checkbox).value,
        )
        return path, start

    def _describe(self, path: Path, start: control.ImportStart) -> str:
        """The file and the options in one line, for a confirmation."""
        labels = self.labels
        if start.kind == "catalog":
            return labels("import.describe_catalog", file=path.name, format=start.format)
        return labels(
            "import.describe_stock",
            file=path.name,
            format=start.format,
            target=labels(f"field.{start.target}"),
            mode=labels(f"import.mode.{start.mode}"),
        )

    # --- running ----------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "preview": self.action_preview,
            "apply": self.action_apply,
            "import-now": self.action_import_now,
        }
        action = actions.get(event.button.id or "")
        if action is not None:
            action()

    def action_preview(self) -> None:
        if self._value("#import-kind") == LISTINGS:
            self._listings(dry_run=True)
            return
        chosen = self._chosen(dry_run=True)
        if chosen is not None and self._free():
            self._start(self._run(*chosen))

    def action_import_now(self) -> None:
        if self._value("#import-kind") == LISTINGS:
            self._listings(dry_run=False)
            return
        chosen = self._chosen(dry_run=False)
        if chosen is not None and self._free():
            self._start(self._confirm_and_run(*chosen, previewed=None))

    def action_apply(self) -> None:
        if self._previewed is None or self._value("#import-kind") == LISTINGS:
            self.say(self.labels("import.preview_first"), error=True)
            return
        path, start, job = self._previewed
        real = msgspec.structs.replace(start, dry_run=False)
        if self._free():
            self._start(self._confirm_and_run(path, real, previewed=job))

    def _free(self) -> bool:
        """Whether no upload runs now (the notice says so when one does)."""
        if self._busy:
            self.say(self.labels("import.busy"), error=True)
        return not self._busy

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        self._busy = True
        self.run_worker(work, group="import", exit_on_error=False)

    async def _confirm_and_run(
        self, path: Path, start: control.ImportStart, previewed: control.Job | None
    ) -> None:
        labels = self.labels
        question = labels("import.confirm", what=self._describe(path, start))
        if previewed is not None:
            question += " " + labels(
                "import.confirm_previewed", success=previewed.success, failure=previewed.failure
            )
        if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
            self._busy = False
            return
        await self._run(path, start)

    async def _run(self, path: Path, start: control.ImportStart) -> None:
        labels = self.labels
        phase = self.query_one("#import-phase", Static)
        progress = self.query_one("#import-progress", ProgressBar)
        try:
            try:
                size = (await asyncio.to_thread(path.stat)).st_size
            except OSError as exc:
                self.say(labels("import.unreadable", path=path, error=exc.strerror), error=True)
                return
            self.say("")
            progress.update(total=max(size, 1), progress=0)
            uploaded = 0

            def acknowledged(chunk: int) -> None:
                nonlocal uploaded
                uploaded += chunk
                progress.advance(chunk)
                phase.update(labels("import.sending", file=path.name, sent=uploaded, size=size))

            acknowledged(0)
            try:
                job_id = await send_file(self.zaiko.link, path, start, acknowledged)
            except ClientError as exc:
                self.say(" ".join(str(exc).split()), error=True)
                phase.update(labels("import.stopped"))
                return
            phase.update(labels("import.checking" if start.dry_run else "import.applying"))
            progress.update(total=None)  # the daemon gives no count while it applies
            finished = await self.ask(control.ImportFinish(id=0, job=job_id))
            # the bar says what was sent again, now that the daemon is done with it
            progress.update(total=max(size, 1), progress=uploaded)
            if not isinstance(finished, control.JobReply):
                phase.update(labels("import.stopped"))
                return
            job = finished.job
            phase.update(labels("import.finished", file=path.name))
            self._previewed = (path, start, job) if job.dry_run else None
            self.query_one("#apply", Button).disabled = self._previewed is None
            self._show(job)
        finally:
            self._busy = False

    # --- the result -------------------------------------------------------------------

    def _show(self, job: control.Job) -> None:
        labels = self.labels
        changes, notes = read_job(job)
        title = labels("job.title", id=job.id)
        if job.dry_run:
            title += f" ({labels('import.dry_run')})"
        summary = Text(title + "  ", style="bold")
        summary.append(
            labels.maybe(f"result.{job.result}", job.result),
            style="green" if job.result == "ok" and not job.failure else "bold red",
        )
        summary.append(
            f" · {labels('job.count')} {job.count} ({labels('job.success')} {job.success} · "
            f"{labels('job.failure')} {job.failure})"
        )
        outcome: list[tuple[str, str]] = []
        if job.dry_run:
            outcome.append((labels("import.nothing_changed"), "yellow"))
        elif job.result == "ok" and job.count == job.success:
            outcome.append((labels("import.all_applied"), "green"))
        if job.failure:
            outcome.append((labels("import.some_failed", failure=job.failure), "red"))
        for index, (text, style) in enumerate(outcome):
            summary.append("\n" if index == 0 else " · ")
            summary.append(text, style=style)
        for note in notes[:NOTES_SHOWN]:
            summary.append(f"\n{note}")
        if len(notes) > NOTES_SHOWN:
            summary.append("\n" + labels("import.more_notes", count=len(notes) - NOTES_SHOWN))
        self.query_one("#import-summary", Static).update(summary)

        self._show_failures(job.errors)
        self._show_changes(changes)

    def _show_failures(self, errors: Iterable[RowError]) -> None:
        failures = self.query_one("#import-failures", DataTable)
        failures.clear()
        for index, error in enumerate(errors):
            failures.add_row(
                Text(str(error.line), justify="right"),
                error.code,
                error.field,
                Text(error.reason, style="red"),
                key=str(index),
            )
        failures.display = bool(failures.row_count)
        self.query_one("#failed-title").display = bool(failures.row_count)

    def _show_changes(self, changes: list[Change]) -> None:
        labels = self.labels
        preview = self.query_one("#import-preview", DataTable)
        preview.clear()
        for index, change in enumerate(changes):
            reserve = f"{change.reserve[0]} → {change.reserve[1]}" if change.reserve else ""
            preview.add_row(
                Text(str(change.line), justify="right"),
                change.code,
                labels(f"field.{change.field}"),
                Text(str(change.before), justify="right"),
                Text(
                    str(change.after),
                    justify="right",
                    style="bold" if change.after != change.before else "dim",
                ),
                reserve,
                key=str(index),
            )
        preview.display = bool(changes)
        self.query_one("#changes-title").display = bool(changes)

    # --- listing overrides ------------------------------------------------------------

    def _listings(self, dry_run: bool) -> None:
        path = self._path()
        if path is None:
            return
        shop = self._value("#import-shop")
        if not shop:
            self.say(self.labels("import.need_shop"), error=True)
            return
        if self._free():
            encoding = self._value("#import-encoding")
            self._start(self._run_listings(path, shop, encoding, dry_run))

    async def _run_listings(self, path: Path, shop: str, encoding: str, dry_run: bool) -> None:
        labels = self.labels
        phase = self.query_one("#import-phase", Static)
        summary = self.query_one("#import-summary", Static)
        try:
            self.say("")
            summary.update("")
            self._show_failures(())
            self._show_changes([])
            try:
                read = await asyncio.to_thread(read_listing_file, path, encoding)
            except OSError as exc:
                self.say(labels("import.unreadable", path=path, error=exc.strerror), error=True)
                return
            except ValueError as exc:  # a line too long, or not a CSV at all
                self.say(f"{path.name}: {exc}", error=True)
                return
            errors = [row for row in read if isinstance(row, RowError)]
            rows = [row for row in read if isinstance(row, control.ListingRow)]
            phase.update(labels("import.finished", file=path.name))
            if errors:
                self._show_failures(errors)
                self.say(labels("import.listings_unreadable", count=len(errors)), error=True)
                return
            if dry_run:
                summary.update(labels("import.listings_read", file=path.name, rows=len(rows)))
                return
            what = labels("import.describe_listings", file=path.name, rows=len(rows), shop=shop)
            question = labels("import.confirm", what=what)
            if not await self.app.push_screen_wait(ConfirmDialog(labels, question)):
                return
            phase.update(labels("import.applying"))
            imported = await self._send_listings(shop, rows)
            phase.update(labels("import.finished", file=path.name))
            if imported is not None:
                summary.update(
                    Text(labels("import.listings_done", shop=shop, imported=imported), "green")
                )
        finally:
            self._busy = False

    async def _send_listings(self, shop: str, rows: list[control.ListingRow]) -> int | None:
        """The rows sent as the CLI sends them, a frame at a time; how many were imported, or
        None when a frame was refused (the summary lists the refused rows)."""
        imported = 0
        for start in range(0, len(rows), LISTINGS_PER_FRAME):
            frame = control.ListingsImport(
                id=0, shop=shop, rows=tuple(rows[start : start + LISTINGS_PER_FRAME])
            )
            try:
                reply = await self.zaiko.link.request(frame)
            except RequestFailed as exc:
                self._listings_refused(exc, start)
                return None
            except ClientError as exc:
                self.say(" ".join(str(exc).split()), error=True)
                return None
            imported += reply.imported
        return imported

    def _listings_refused(self, exc: RequestFailed, start: int) -> None:
        """The refusal in the notice line, and each refused row under it, numbered in the
        file's rows (the daemon numbers them within the frame)."""
        labels = self.labels
        notice = " ".join(str(exc).split())
        if start:
            notice = labels("import.listings_partial", done=start, next=start + 1) + notice
        self.say(notice, error=True)
        details = [
            REFUSED_ROW.sub(lambda found: f"row {int(found[1]) + start}", detail, count=1)
            for detail in exc.error.details
        ]
        shown = Text(labels("import.listings_refused"), style="bold red")
        for detail in details[:DETAILS_SHOWN]:
            shown.append(f"\n{detail}")
        if len(details) > DETAILS_SHOWN:
            shown.append("\n" + labels("import.more_rows", count=len(details) - DETAILS_SHOWN))
        self.query_one("#import-summary", Static).update(shown)
