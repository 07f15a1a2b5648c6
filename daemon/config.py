"""The daemon's TOML config (SPEC §5), decoded into Structs that refuse unknown keys."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

import msgspec

from protocols.control import DEFAULT_MAX_FRAME_BYTES, UPLOAD_CHUNK_BYTES

MIN_FRAME_BYTES = UPLOAD_CHUNK_BYTES * 4 // 3 + 4096


class DaemonSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    state_dir: str


class ControlSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:8765"
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    hello_timeout_s: float = 10.0


class MailSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    maildir_root: str = ""


class CredentialsSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dir: str = ""


class SupervisorSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0


class IntakeSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How order intake reaches the malls' order APIs (mail intake needs no tuning)."""

    api_poll_s: float = 60.0  # how often an order API is asked
    api_overlap_s: float = 600.0  # each poll asks again this far before its cursor
    # and leaves the newest changes this long to settle; unset: each mall's own (Amazon
    # 120 s: SP-API refuses a LastUpdatedBefore later than two minutes ago; others 10 s)
    api_settle_s: float | None = None


class TuiSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The operator's TUI (``zaiko tui``); ``--lang`` overrides ``lang``."""

    lang: Literal["ja", "en"] = "ja"


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    daemon: DaemonSection
    control: ControlSection = ControlSection()
    mail: MailSection = MailSection()
    credentials: CredentialsSection = CredentialsSection()
    supervisor: SupervisorSection = SupervisorSection()
    intake: IntakeSection = IntakeSection()
    tui: TuiSection = TuiSection()
    base_dir: str = ""  # the config file's folder; relative paths are read from there

    def _path(self, text: str) -> Path:
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (Path(self.base_dir) / path).resolve()

    @property
    def state_dir(self) -> Path:
        return self._path(self.daemon.state_dir)

    @property
    def database(self) -> Path:
        return self.state_dir / "zaiko.sqlite3"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "control.token"

    @property
    def address_file(self) -> Path:
        """Where the daemon writes the address it listens on (needed when the port is 0)."""
        return self.state_dir / "control.addr"

    @property
    def maildir_root(self) -> Path:
        return self._path(self.mail.maildir_root or str(self.state_dir / "mail"))

    @property
    def credentials_dir(self) -> Path:
        if self.credentials.dir:
            return self._path(self.credentials.dir)
        if env := os.environ.get("CREDENTIALS_DIRECTORY"):
            return Path(env)
        return self.state_dir / "credentials"

    @property
    def listen(self) -> tuple[str, int]:
        return split_listen(self.control.listen)


class ConfigError(ValueError):
    pass


def require_loopback(host: str) -> None:
    """The control socket changes stock: it never listens beyond this machine."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(f"control.listen: {host!r} is not an IP address or localhost") from exc
    if not address.is_loopback:
        raise ConfigError(
            f"control.listen: {host} is not a loopback address; the control socket listens on "
            "127.0.0.1 or ::1 only (use an SSH tunnel to reach it from elsewhere)"
        )


def split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"control.listen: {text!r} is not HOST:PORT (port 0–65535)")
    return host.strip("[]"), int(port)


def load_config(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        config = msgspec.toml.decode(raw, type=Config)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    config = msgspec.structs.replace(config, base_dir=str(path.resolve().parent))
    require_loopback(split_listen(config.control.listen)[0])
    if config.control.max_frame_bytes < MIN_FRAME_BYTES:
        raise ConfigError(
            f"control.max_frame_bytes: at least {MIN_FRAME_BYTES} (an upload chunk of "
            f"{UPLOAD_CHUNK_BYTES} bytes travels base64-encoded in one frame)"
        )
    return config


TOKEN_MIN_LENGTH = 32


def ensure_token(path: Path) -> str:
    """Read the control token, creating it (mode 0600, written whole or not at all) at first start.

    A token file others may read, or one too short to be a secret, is refused: whoever
    reads it can change stock.
    """
    if not path.exists():
        token = secrets.token_urlsafe(32)
        partial = path.with_name(path.name + ".new")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
        return token
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{path} may be read by other users; chmod 600 it (it grants full control)"
        )
    token = path.read_text().strip()
    if len(token) < TOKEN_MIN_LENGTH:
        raise ConfigError(
            f"{path} holds no usable token (shorter than {TOKEN_MIN_LENGTH} characters); delete it "
            "and a new one is made at start"
        )
    return token


def prepare_state(config: Config) -> str:
    """Create state_dir and the maildir root if missing; return the control token."""
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.maildir_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return ensure_token(config.token_file)
