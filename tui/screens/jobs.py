"""Jobs (スケジュール一覧): the job log with its counts; Enter opens a job's row messages;
``d`` makes a stock download (在庫ダウンロード) and saves it where the operator says, ``s`` saves
a finished one again."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Log, Static

from cli.client import ClientError
from protocols import control
from tui.screens.base import ZaikoScreen, add_columns, local_time
from tui.screens.dialogs import DownloadChoice, DownloadDialog

JOBS_SHOWN = 200
COUNT_WIDTH = 6


def default_download_path() -> Path:
    return Path.cwd() / f"zaiko-stock-{datetime.now():%Y%m%d-%H%M%S}.csv"


class JobsScreen(ZaikoScreen):
    MODE = "jobs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "download", "key.download"),
        Binding("s", "save", "key.save"),
        Binding("r", "reload", "key.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[int, control.Job] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="job-counts")
        table: DataTable[str | Text] = DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        add_columns(
            table,
            self.labels,
            [
                ("job.id", 5),
                ("job.kind", 0),
                ("job.shop", 0),
                ("job.started", 14),
                ("job.ended", 14),
                ("job.state", 0),
                ("job.result", 0),
                ("job.count", COUNT_WIDTH),
                ("job.success", COUNT_WIDTH),
                ("job.failure", COUNT_WIDTH),
                ("job.detail", 0),
            ],
        )
        yield table
        yield from self.compose_bottom()

    def action_reload(self) -> None:
        self.reload()

    async def load(self) -> None:
        reply = await self.ask(control.JobsList(id=0, limit=JOBS_SHOWN))
        if not isinstance(reply, control.JobsReply):
            return
        self._jobs = {job.id: job for job in reply.jobs}
        table = self.query_one("#jobs", DataTable)
        highlighted = self._highlighted()
        table.clear()
        for job in reply.jobs:
            table.add_row(*self._row(job), key=str(job.id))
        if highlighted is not None and highlighted.id in self._jobs:
            table.move_cursor(row=table.get_row_index(str(highlighted.id)))
        jobs = reply.jobs
        self.query_one("#job-counts", Static).update(
            self.labels(
                "job.count_line",
                count=len(jobs),
                running=sum(job.state == "running" for job in jobs),
                ok=sum(job.result == "ok" for job in jobs),
                failed=sum(job.result == "failed" for job in jobs),
            )
        )

    def _row(self, job: control.Job) -> list[str | Text]:
        labels = self.labels
        result = Text(
            labels.maybe(f"result.{job.result}", job.result),
            style={"ok": "green", "failed": "bold red"}.get(job.result, ""),
        )
        return [
            Text(str(job.id), justify="right"),
            labels.maybe(f"kind.{job.kind}", job.kind),
            job.shop,
            local_time(job.started_at),
            local_time(job.ended_at),
            labels.maybe(f"state.{job.state}", job.state),
            result,
            Text(str(job.count), justify="right"),
            Text(str(job.success), justify="right"),
            Text(str(job.failure), justify="right", style="red" if job.failure else ""),
            job.detail,
        ]

    def _highlighted(self) -> control.Job | None:
        table = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self._jobs.get(int(row_key.value or 0))

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, control.JobChanged):
            self.reload_soon()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.app.push_screen(JobScreen(int(event.row_key.value)))

    # --- downloads --------------------------------------------------------------------

    def action_download(self) -> None:
        self.run_worker(self._download(), group="download", exit_on_error=False)

    def action_save(self) -> None:
        job = self._highlighted()
        if job is None or job.kind != "export" or job.result != "ok":
            self.say(self.labels("download.not_export"), error=True)
            return
        self.run_worker(self._save_again(job), group="download", exit_on_error=False)

    async def _download(self) -> None:
        choice = await self.app.push_screen_wait(
            DownloadDialog(self.labels, default_download_path())
        )
        if choice is None:
            return
        started = await self.ask(
            control.ExportStart(id=0, target=choice.target, encoding=choice.encoding)
        )
        if not isinstance(started, control.JobReply):
            return
        self.say(self.labels("download.started", job=started.job.id))
        try:
            job = await self.zaiko.link.job_done(started.job)
        except ClientError as exc:
            self.say(str(exc), error=True)
            return
        if job.result != "ok":
            self.say(f"{job.id}: {'; '.join(job.messages)}", error=True)
            return
        await self._save(job, choice)

    async def _save_again(self, job: control.Job) -> None:
        choice = await self.app.push_screen_wait(
            DownloadDialog(self.labels, default_download_path(), export=False)
        )
        if choice is not None:
            await self._save(job, choice)

    async def _save(self, job: control.Job, choice: DownloadChoice) -> None:
        """The download's bytes, chunk by chunk, into ``path.part``, renamed when whole."""
        partial = choice.path.with_name(choice.path.name + ".part")
        written = 0
        try:
            with partial.open("wb") as out:
                while True:
                    chunk = await self.ask(control.Download(id=0, job=job.id, offset=written))
                    if not isinstance(chunk, control.DownloadChunk):
                        return
                    await asyncio.to_thread(out.write, chunk.data)
                    written += len(chunk.data)
                    if chunk.eof:
                        break
            partial.replace(choice.path)
        except OSError as exc:
            error = f"{exc.filename or choice.path}: {exc.strerror}"
            self.say(self.labels("download.failed", error=error), error=True)
            return
        self.say(self.labels("download.saved", path=choice.path, bytes=written))


class JobScreen(ZaikoScreen):
    """One job (``job_show``) with its row messages."""

    MODE = "jobs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "key.back"),
        Binding("r", "reload", "key.refresh"),
    ]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="job-head")
        yield Log(id="job-messages", highlight=False)
        yield from self.compose_bottom()

    def action_reload(self) -> None:
        self.reload()

    async def load(self) -> None:
        reply = await self.ask(control.JobShow(id=0, job=self.job_id))
        if isinstance(reply, control.JobReply):
            self._show(reply.job)

    def _show(self, job: control.Job) -> None:
        labels = self.labels
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        head.add_row(labels("job.title", id=job.id), labels.maybe(f"kind.{job.kind}", job.kind))
        for label_id, value in (
            ("job.shop", job.shop),
            ("job.started", local_time(job.started_at)),
            ("job.ended", local_time(job.ended_at)),
            ("job.state", labels.maybe(f"state.{job.state}", job.state)),
            ("job.result", labels.maybe(f"result.{job.result}", job.result)),
            (
                "job.count",
                f"{job.count} ({labels('job.success')} {job.success} · "
                f"{labels('job.failure')} {job.failure})",
            ),
            ("job.detail", job.detail),
        ):
            if value:
                head.add_row(labels(label_id), value)
        self.query_one("#job-head", Static).update(head)
        log = self.query_one("#job-messages", Log)
        log.clear()
        log.write_lines(job.messages or [labels("job.no_messages")])

    def daemon_changed(self, event: control.Event) -> None:
        if isinstance(event, control.JobChanged) and event.job.id == self.job_id:
            self.reload_soon()
