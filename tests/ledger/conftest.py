from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.harness import LedgerHarness


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LedgerHarness]:
    harness = LedgerHarness(tmp_path / "z.sqlite3")
    try:
        yield harness
    finally:
        harness.close()
