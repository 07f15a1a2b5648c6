"""What a SKU code, a product name and a stock count may be (SPEC §2), in one place for every
way they come in: ``sku add`` and ``stock set`` over the protocol, TEMPOSTAR files and mall
files alike.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

MAX_CODE_LENGTH: Final = 64
# Nine digits: far above any real stock, and a sum of two stays well inside SQLite's int64.
MAX_QUANTITY: Final = 999_999_999

_EXPONENT_FORM: Final = re.compile(r"[0-9](?:\.[0-9]+)?E\+[0-9]+")
INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


def code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a SKU code, or None when it can.

    Codes are kept exactly as given, so a code with a space before or after it would be a
    different SKU from the one the operator means: refused rather than trimmed.
    """
    if not code:
        return "empty"
    if len(code) > MAX_CODE_LENGTH:
        return f"longer than {MAX_CODE_LENGTH} characters ({len(code)})"
    invisible = first_invisible(code)
    if invisible is not None:
        return invisible
    if code != code.strip():
        return "has spaces before or after it: remove them (codes are kept exactly as given)"
    if _EXPONENT_FORM.fullmatch(code):
        return "looks like Excel turned the code into exponent form"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a product name (it would break one-line displays), or None."""
    return first_invisible(name)


def quantity_problem(value: int, *, allow_negative: bool = False) -> str | None:
    """Why ``value`` cannot be a stock count, or None. Only a sale (or ``--allow-negative``
    on a migration import) may take a count below zero."""
    if value > MAX_QUANTITY:
        return f"{value} is above {MAX_QUANTITY:,}, the largest count zaiko keeps"
    if value < 0 and not allow_negative:
        return f"{value} is below 0"
    if value < -MAX_QUANTITY:
        return f"{value} is below -{MAX_QUANTITY:,}"
    return None


def first_invisible(text: str) -> str | None:
    for char in text:
        if unicodedata.category(char) in INVISIBLE_CATEGORIES:
            return f"contains the control character U+{ord(char):04X}"
    return None
