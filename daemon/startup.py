"""``zaiko daemon`` as a process: a start-up failure the operator can act on is one line.

Until the daemon listens, what stops it is nearly always the machine's or the operator's
doing: the port is taken, the state directory cannot be written, another daemon holds it,
the database is newer than this zaiko, the token file is readable by others. Those become a
``StartupFailed`` whose message is that one line; trio's nurseries wrap what their tasks
raise in exception groups (a busy port arrives three groups deep), so the causes are taken
from the group's leaves. Anything else, and any failure once the daemon listens, keeps its
traceback: that is a bug to report.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from functools import partial

import trio

from daemon.config import Config, ConfigError
from daemon.ledger.schema import SchemaError
from daemon.main import run_daemon
from daemon.statelock import StateDirInUse, StateDirUnusable


class StartupFailed(Exception):
    """The daemon did not start; the message says why in one line."""


class _Readiness(trio.TaskStatus[tuple[str, int]]):
    """Stands in for ``nursery.start``'s task status: notes that the daemon listens."""

    def __init__(self) -> None:
        self.listening = False

    def started(self, value: object = None) -> None:
        self.listening = True


def run_daemon_process(config: Config) -> None:
    """Run the daemon until it is stopped; raise ``StartupFailed`` if it cannot start."""
    readiness = _Readiness()
    try:
        trio.run(partial(run_daemon, config, task_status=readiness))
    except BaseException as exc:
        if not isinstance(exc, Exception):
            if isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt):
                raise KeyboardInterrupt from None  # Ctrl-C while starting: no traceback
            raise
        reason = None if readiness.listening else startup_failure(exc, config)
        if reason is None:
            raise
        raise StartupFailed(reason) from exc


def startup_failure(exc: BaseException, config: Config) -> str | None:
    """One line saying why the daemon could not start, or None if ``exc`` holds a failure
    that is not the operator's to fix."""
    reasons = [_reason(leaf, config) for leaf in _leaves(exc)]
    if not reasons or None in reasons:
        return None
    return "; ".join(dict.fromkeys(r for r in reasons if r is not None))


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


LISTEN_ERRNOS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def _reason(exc: BaseException, config: Config) -> str | None:
    host, port = config.listen
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, (StateDirInUse, StateDirUnusable, ConfigError)):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {exc.strerror} ([control] listen)"
    if isinstance(exc, OSError) and exc.filename is None and exc.errno in LISTEN_ERRNOS:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"cannot listen on {where}: address already in use "
                "(is another zaiko running? change [control] listen)"
            )
        return f"cannot listen on {where}: {exc.strerror} ([control] listen)"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot start: {exc.filename}: {exc.strerror}"
    if isinstance(exc, sqlite3.Error):
        return f"cannot open the database {config.database}: {exc}"
    if isinstance(exc, SchemaError):
        # a database newer than this zaiko, an SQLite too old for it, settings it cannot read
        return f"cannot start: {exc}"
    return None
