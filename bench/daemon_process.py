"""The real daemon as the benchmarks run it: started with its own configuration in a
temporary folder, ready once it told the (fake) systemd notify socket so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class DaemonProcess:
    def __init__(self, directory: Path, extra_config: str = "") -> None:
        self.config_path = directory / "zaiko.toml"
        self.config_path.write_text(
            '[daemon]\nstate_dir = "state"\n[control]\nlisten = "127.0.0.1:0"\n' + extra_config
        )
        self.log_path = directory / "daemon.log"
        notify_path = directory / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command("daemon"),
                    cwd=ROOT,
                    env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            while b"READY=1" not in notify.recv(4096):
                pass

    def command(self, *args: str) -> list[str]:
        """The argv of ``zaiko ARGS`` against this daemon."""
        return [sys.executable, "-m", "cli", "--config", str(self.config_path), *args]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
