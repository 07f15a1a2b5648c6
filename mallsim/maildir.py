"""Deliver mails into a real Maildir: write under ``tmp/``, fsync, rename into ``new/``."""

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


def deliver(maildir: Path, raw: bytes, *, when: float) -> Path:
    """Write one message; returns its path under ``new/``. Blocking (run it on a thread)."""
    ensure_maildir(maildir)
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    name = f"{int(when)}.M{next(_seq)}P{os.getpid()}.{host}"
    tmp = maildir / "tmp" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
    finally:
        os.close(fd)
    final = maildir / "new" / name
    os.rename(tmp, final)
    return final
