"""Secrets from credential files (systemd ``LoadCredential=`` style): one file per secret in
``[credentials] dir``, named by a shop's ``api_credential``/``ftp_credential``. A secret is
read when needed and never logged, stored or sent to a client."""

from __future__ import annotations

from pathlib import Path

from protocols.malls.base import ApiAccount
from protocols.settings import ShopSettings


class CredentialError(Exception):
    """A credential the shop names cannot be read; the message names the file, not the secret."""


def read_credential(directory: Path, name: str | None, setting: str) -> str:
    if not name:
        raise CredentialError(f"{setting} is not set: name a credential file in {directory}")
    if "/" in name or name.startswith("."):
        raise CredentialError(f"{setting} {name!r}: a file name in {directory}, not a path")
    path = directory / name
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CredentialError(f"{setting}: credential file {path} does not exist") from None
    except OSError as exc:
        raise CredentialError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise CredentialError(f"{setting}: credential file {path} is empty")
    return secret


def mall_account(shop: ShopSettings, directory: Path) -> ApiAccount:
    """A shop's mall API account: its base URL and seller id, the secret from its file."""
    if not shop.api_base_url:
        raise CredentialError(f"shop {shop.id}: api_base_url is not set")
    return ApiAccount(
        base_url=shop.api_base_url,
        secret=read_credential(directory, shop.api_credential, "api_credential"),
        seller_id=shop.seller_id,
    )
