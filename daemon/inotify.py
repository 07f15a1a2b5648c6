"""Linux inotify through ctypes: wake up when a mail lands in a Maildir's ``new/``, instead of
finding it at the next scan. Where inotify is not available the caller scans on a timer
alone (``DirectoryWatch.open`` returns None)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
from pathlib import Path

import trio

log = logging.getLogger(__name__)

IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
_READ_BYTES = 64 * 1024


class DirectoryWatch:
    """An inotify descriptor watching one folder for files moved into it (a Maildir delivery:
    tmp/ then rename) or written in it and closed (a file copied there by hand)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, folder: Path) -> DirectoryWatch | None:
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        libc = ctypes.CDLL(name, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            return None
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            log.info(
                "inotify unavailable (%s): scanning on a timer", os.strerror(ctypes.get_errno())
            )
            return None
        if libc.inotify_add_watch(fd, os.fsencode(folder), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
            log.info(
                "cannot watch %s (%s): scanning on a timer", folder, os.strerror(ctypes.get_errno())
            )
            os.close(fd)
            return None
        return cls(fd)

    async def wait(self) -> None:
        """Until something landed in the folder (then the pending notices are read away)."""
        await trio.lowlevel.wait_readable(self._fd)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                if not os.read(self._fd, _READ_BYTES):
                    return
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    return
                raise

    def close(self) -> None:
        os.close(self._fd)
