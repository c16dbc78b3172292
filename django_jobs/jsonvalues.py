"""What every JSON value stored by django_jobs must satisfy: arguments, metadata, results.

NaN and infinity are not JSON, and NUL characters cannot be stored by PostgreSQL: both are
refused here, on every database, rather than failing at INSERT time.
"""

from __future__ import annotations

import json
import re
from typing import Any

# \u0000 preceded by an even number of backslashes: an escaped NUL, not "\\u0000" text.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def has_nul(text: str) -> bool:
    """Does this JSON text hold a NUL character? PostgreSQL cannot store one."""
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None


def json_text(value: Any, what: str) -> str:
    """``value`` as JSON text; ``TypeError`` naming ``what`` if it cannot be stored."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from None
    if has_nul(text):
        raise TypeError(f"{what} must not contain NUL characters (\\x00).")
    return text


def check_json(value: Any, what: str) -> Any:
    """``value`` as stored JSON (tuples become lists); ``TypeError`` if it cannot be
    stored."""
    if type(value) in (list, dict) and not value:
        return type(value)()  # the common no-arguments case: nothing to check
    return json.loads(json_text(value, what))
