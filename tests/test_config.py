"""The daemon config: unknown keys, loopback only, token file mode, relative paths."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config, prepare_state


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zaiko.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:8765", "192.168.1.10:8765", "example.com:80", "127.0.0.1:70000", "nonsense"]
)
def test_control_listens_on_loopback_only(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, f'[daemon]\nstate_dir = "s"\n[control]\nlisten = "{listen}"\n'))
    assert "control.listen" in str(caught.value)


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "[::1]:8765", "localhost:8765", "127.0.0.2:1"])
def test_loopback_addresses_are_accepted(tmp_path: Path, listen: str) -> None:
    load_config(write(tmp_path, f'[daemon]\nstate_dir = "s"\n[control]\nlisten = "{listen}"\n'))


def test_unknown_keys_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[daemon]\nstate_dir = "s"\nstat_dir = "typo"\n'))
    assert "stat_dir" in str(caught.value)
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "[control]\n"))  # state_dir is required


def test_state_is_created_with_a_private_token(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[daemon]\nstate_dir = "state"\n'))
    token = prepare_state(config)
    assert config.state_dir == tmp_path / "state"
    assert config.maildir_root.is_dir()
    assert stat.S_IMODE(config.token_file.stat().st_mode) == 0o600
    assert prepare_state(config) == token  # kept across starts
    assert len(token) >= 32


def test_token_file_others_can_read_or_too_short_is_refused(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[daemon]\nstate_dir = "state"\n'))
    prepare_state(config)
    config.token_file.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        prepare_state(config)
    assert "chmod 600" in str(caught.value)
    config.token_file.write_text("")
    config.token_file.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        prepare_state(config)
    assert "no usable token" in str(caught.value)


def test_frame_limit_must_fit_an_upload_chunk(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            write(tmp_path, '[daemon]\nstate_dir = "s"\n[control]\nmax_frame_bytes = 4096\n')
        )
    assert "max_frame_bytes" in str(caught.value)


def test_each_order_api_settles_as_its_mall_needs_unless_configured() -> None:
    from daemon.shop_actors import order_settle_s
    from protocols.malls import module

    assert order_settle_s(module("amazon"), None) == 120.0  # SP-API's two-minute rule
    assert order_settle_s(module("qoo10"), None) == 10.0
    assert order_settle_s(module("amazon"), 0.0) == 0.0  # the config's word wins
