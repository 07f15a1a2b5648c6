"""Deliver mails into a real Maildir: write under ``tmp/``, rename into ``new/``.

Delivery is synchronous on purpose: a mail is a few KB and the rename makes it atomic, and
doing it on the trio thread keeps simulated time from running ahead of the mails under
``MockClock`` (a worker thread would let the clock autojump meanwhile). ``fsync=True`` makes
it durable as well, for a Maildir that must survive a crash (the simulator's need not).
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

_seq = itertools.count(1)


def ensure_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def deliver(maildir: Path, raw: bytes, *, when: float, fsync: bool = False) -> Path:
    """Write one message; returns its path under ``new/``."""
    ensure_maildir(maildir)
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    name = f"{int(when)}.M{next(_seq)}P{os.getpid()}.{host}"
    tmp = maildir / "tmp" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(raw)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    finally:
        os.close(fd)
    final = maildir / "new" / name
    os.rename(tmp, final)
    return final
