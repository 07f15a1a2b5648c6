"""systemd's notify protocol: one datagram to $NOTIFY_SOCKET, if systemd gave one."""

from __future__ import annotations

import logging
import os
import socket

import trio

log = logging.getLogger(__name__)


async def sd_notify(message: str) -> None:
    """Tell systemd; a notify socket that went away is logged, never fatal."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with sock:
        try:
            await sock.connect(address)
            await sock.send(message.encode())
        except OSError as exc:
            log.warning("could not notify systemd (%s): %s", message, exc.strerror)
