"""systemd's notify protocol: one datagram to $NOTIFY_SOCKET, if systemd gave one."""

from __future__ import annotations

import logging
import os
import socket

import trio

log = logging.getLogger(__name__)


def _notify_address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if address and address.startswith("@"):
        return "\0" + address[1:]
    return address or None


async def sd_notify(message: str) -> None:
    """Tell systemd; a notify socket that went away is logged, never fatal."""
    address = _notify_address()
    if address is None:
        return
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with sock:
        try:
            await sock.connect(address)
            await sock.send(message.encode())
        except OSError as exc:
            log.warning("could not notify systemd (%s): %s", message, exc.strerror)


def sd_status(status: str) -> None:
    """Show a line in ``systemctl status`` (``STATUS=``), from any thread, never waiting:
    a status nobody reads in time is dropped."""
    address = _notify_address()
    if address is None:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(f"STATUS={status}".encode(), socket.MSG_DONTWAIT, address)
        except OSError as exc:
            log.debug("status not sent to systemd (%s): %s", status, exc.strerror)
