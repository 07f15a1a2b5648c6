"""Fixtures: a simulator with one shop per mall kind, started in-process on ephemeral ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from mallsim.config import Config, parse_config
from mallsim.sim import Simulator, open_simulator
from protocols.malls import KINDS, capability

PASSWORD = "ftps-pass-123"
SECRET = "svcSecret123:licKey456"
SELLER = "SELLER1"


class ManualClock:
    """The rate limiter's clock: it moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def item_ids(kind: str) -> tuple[str, str]:
    """The shop's two listings: a plain item and a second one."""
    return f"{kind}-item-a", f"{kind}-item-b"


def sim_toml(
    tmp: Path, public_key: str, *, customers_per_hour: float = 0.0, extra: str = ""
) -> str:
    stock = ", ".join(f'"{kind.upper()}-A" = 10, "{kind.upper()}-B" = 3' for kind in KINDS)
    shops: list[str] = []
    for kind in KINDS:
        a, b = item_ids(kind)
        intake = capability(kind).intake
        shops.append(
            f"""
[[shops]]
id = "{kind}"
mall = "{kind}"
merchant = "m1"
{f'intake = "{intake[0]}"' if intake else ""}
seed = {len(shops) + 1}
customers_per_hour = {customers_per_hour}
api_secret = "{SECRET}"
seller_id = "{SELLER}"
ftp_user = "user-{kind}"
ftp_password = "{PASSWORD}"
sftp_authorized_key = "{public_key}"
items = [
  {{ sku = "{kind.upper()}-A", item_id = "{a}", name = "商品A" }},
  {{ sku = "{kind.upper()}-B", item_id = "{b}", name = "商品B", shown = 2 }},
]
"""
        )
    return f"""
[sim]
state_dir = "{tmp / "state"}"
maildir_root = "{tmp / "maildir"}"
start_time = "2025-06-01T09:00:00+09:00"
{extra}

[[merchants]]
id = "m1"
stock = {{ {stock} }}
""" + "".join(shops)


@pytest.fixture(scope="session")
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def sim_config(tmp_path: Path, client_key: asyncssh.SSHKey) -> Config:
    pub = client_key.export_public_key().decode().strip()
    return parse_config(sim_toml(tmp_path, pub), base_dir=tmp_path)


@pytest.fixture
def rate_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(sim_config: Config, rate_clock: ManualClock) -> AsyncIterator[Simulator]:
    async with open_simulator(
        sim_config, rate_clock=rate_clock, services=("http", "sftp", "ftps")
    ) as s:
        yield s
