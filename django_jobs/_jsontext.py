"""What every JSON value stored by django_jobs must satisfy, checked on its text."""

import re

# \u0000 preceded by an even number of backslashes: an escaped NUL, not "\\u0000" text.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def has_nul(text: str) -> bool:
    """Does this JSON text hold a NUL character? PostgreSQL cannot store one."""
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None
