"""One daemon per state directory: an exclusive ``flock`` on ``state_dir/daemon.lock``.

The daemon takes the lock before it touches anything else in the state directory, so a
second daemon started on the same state changes nothing: it neither marks the running
daemon's imports as interrupted, nor removes their spooled uploads, nor opens the database.
The lock belongs to the open file, and the kernel drops it when the process ends however it
ends, so a daemon killed with -9 leaves nothing a restart must clean up. The file holds the
holder's pid for the refusal message only; the lock, not the file, says who runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "daemon.lock"


class StateDirInUse(Exception):
    """Another daemon holds the state directory."""


class StateDirUnusable(Exception):
    """The state directory cannot be created or written."""


class StateLock:
    """The held lock; ``release`` (or process exit) lets the next daemon start."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        # the file stays: removing it would let a daemon that opened it a moment earlier
        # lock the removed file while a third one locks a new file of the same name
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_state_dir(state_dir: Path) -> StateLock:
    """Create ``state_dir`` if missing and lock it, or refuse in one line."""
    path = state_dir / LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateDirUnusable(
            f"cannot use state dir {state_dir}: {exc.strerror} ([daemon] state_dir)"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        running = f"pid {holder}" if holder else "another process"
        raise StateDirInUse(
            f"another zaiko daemon ({running}) runs on state dir {state_dir}; stop it first, "
            "or give this one a [daemon] state_dir of its own"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StateDirUnusable(f"cannot lock {path}: {exc.strerror}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise StateDirUnusable(f"cannot write {path}: {exc.strerror}") from exc
    return StateLock(path, fd)


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote, or None while it has not written it yet."""
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None
