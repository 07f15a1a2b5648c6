"""One module per mall kind; this registry maps each kind to its module and capability."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import get_args

from protocols.malls.base import Capability, MallKind

KINDS: tuple[MallKind, ...] = get_args(MallKind)


def module(kind: str) -> ModuleType:
    found = _modules.get(kind)
    if found is None:
        if kind not in KINDS:
            raise KeyError(f"unknown mall kind {kind!r} (known: {', '.join(KINDS)})")
        found = _modules[kind] = importlib.import_module(f"protocols.malls.{kind}")
    return found


# the ledger asks per order line: a dict lookup, not an import-machinery call
_modules: dict[str, ModuleType] = {}


def capability(kind: str) -> Capability:
    cap: Capability = module(kind).CAPABILITY
    return cap


def capabilities() -> dict[str, Capability]:
    return {kind: capability(kind) for kind in KINDS}
