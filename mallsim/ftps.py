"""The simulated malls' FTPS server: pyftpdlib, explicit TLS (AUTH TLS), on its own thread.

One listener serves every shop: the FTP user name picks the shop (password per shop), each
shop is rooted at its home directory. TLS is required on the control and data channels.
A finished upload (``on_file_received``, or a rename into place) is handed to the
simulator's trio side; that call blocks this connection's thread until trio accepts it.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from mallsim.config import Faults

log = logging.getLogger("mallsim.ftps")
# pyftpdlib logs every command at INFO, including the user name; keep it quiet.
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


@dataclass(frozen=True)
class FtpsUser:
    shop_id: str
    home: Path
    password: str


def make_certificate(state_dir: Path, host: str) -> tuple[Path, Path]:
    """A fresh self-signed certificate for ``host`` (and localhost); returns (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallsim")])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = state_dir / "ftps_cert.pem"
    key_path = state_dir / "ftps_key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


class _Authorizer(DummyAuthorizer):  # type: ignore[misc]
    def __init__(self, service: FtpsService) -> None:
        super().__init__()
        self.service = service

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        user = self.service.users.get(username)
        if (
            user is None
            or self.service.faults(user.shop_id).reject_auth
            or not hmac.compare_digest(password.encode(), user.password.encode())
        ):
            raise AuthenticationFailed("Authentication failed.")


class FtpsService:
    """Start with ``start()``; ``ready`` is set once bound; ``stop()`` + ``join()``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        certfile: Path,
        keyfile: Path,
        users: dict[str, FtpsUser],
        faults: Callable[[str], Faults],
        on_closed: Callable[[str, Path], None],
    ) -> None:
        self.users = users
        self.faults = faults
        self.on_closed = on_closed
        self.bound_port = 0
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._host, self._port = host, port
        self._certfile, self._keyfile = certfile, keyfile
        self._thread = threading.Thread(target=self._thread_main, name="mallsim-ftps", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self) -> None:
        self._thread.join()

    def _handler_class(self) -> type[TLS_FTPHandler]:
        service = self
        authorizer = _Authorizer(self)
        for name, user in self.users.items():
            authorizer.add_user(name, "", str(user.home), perm="elradfmwMT")

        # A class per simulator: pyftpdlib caches the SSL context on the handler class.
        class Handler(TLS_FTPHandler):  # type: ignore[misc]
            certfile = str(self._certfile)
            keyfile = str(self._keyfile)
            ssl_context = None
            tls_control_required = True
            tls_data_required = True
            auth_failed_timeout = 0
            banner = "mallsim FTPS ready."
            dtp_handler = TLS_DTPHandler

            def _shop(self) -> FtpsUser | None:
                return service.users.get(self.username or "")

            def _faults(self) -> Faults | None:
                user = self._shop()
                return service.faults(user.shop_id) if user else None

            def ftp_USER(self, line: str) -> Any:
                user = service.users.get(line)
                if user is not None and service.faults(user.shop_id).down:
                    self.respond("421 Service not available, closing control connection.")
                    self.close_when_done()
                    return None
                return super().ftp_USER(line)

            def ftp_PASS(self, line: str) -> Any:
                faults = self._faults()
                if faults is not None and faults.slow_s:
                    time.sleep(faults.slow_s)  # this connection's own thread
                return super().ftp_PASS(line)

            def ftp_STOR(self, file: str, mode: str = "w") -> Any:
                faults = self._faults()
                if faults is not None and faults.error_5xx:
                    self.respond("451 Requested action aborted: local error in processing.")
                    return None
                return super().ftp_STOR(file, mode)

            def ftp_RNTO(self, path: str) -> Any:
                result = super().ftp_RNTO(path)
                user = self._shop()
                if result is not None and user is not None:
                    service.on_closed(user.shop_id, Path(result[1]))
                return result

            def on_file_received(self, file: str) -> None:
                user = self._shop()
                if user is not None:
                    service.on_closed(user.shop_id, Path(file))

        Handler.authorizer = authorizer
        return Handler

    def _thread_main(self) -> None:
        try:
            handler = self._handler_class()
            # Its own IOLoop: pyftpdlib's default is a process-wide singleton.
            server = ThreadedFTPServer((self._host, self._port), handler, ioloop=IOLoop())
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        server.poll_timeout = 0.05  # how often connection threads look for shutdown
        server.join_timeout = 10
        self.bound_port = server.socket.getsockname()[1]
        self.ready.set()
        try:
            while not self._stopping.is_set():
                server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        except BaseException as exc:
            self.error = exc
        finally:
            server.close_all()
