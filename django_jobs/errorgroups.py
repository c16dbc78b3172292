"""Which failures are "the same": the key the admin groups failed jobs by.

A failure's group is its exception type and its message with what changes from one job to
the next taken out: addresses, UUIDs, e-mail addresses, URLs' query strings, hex digests
and numbers become placeholders. ``ConnectionError: timeout after 30s talking to
10.0.0.7:5432 (job 123)`` and the same error for job 456 land in one group, ``ConnectionError:
timeout after <n>s talking to <ip>:<n> (job <n>)``. It is computed once, when a job fails
for good, and stored in ``Job.error_group`` (indexed over failed jobs), so grouping a
million failures is one index scan.
"""

from __future__ import annotations

import re

MAX_LENGTH = 255  # the column's length

_RULES = [
    (re.compile(r"\b[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"\?[^\s'\"]*"), "?<query>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalize(message: str) -> str:
    """``message`` with its per-job details replaced by placeholders."""
    text = str(message)[:2000]
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return text.strip()


def error_group(error: dict | None) -> str:
    """The group of one ``Job.errors`` entry: ``"Type: normalised message"``, cut to the
    column's length."""
    if not isinstance(error, dict):
        return ""
    kind = str(error.get("type") or "Exception")
    message = normalize(error.get("message") or "")
    return f"{kind}: {message}"[:MAX_LENGTH] if message else kind[:MAX_LENGTH]
