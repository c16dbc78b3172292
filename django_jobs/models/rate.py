"""Queue rate limits (SPEC 5.6): "at most N job starts in any period", across every
worker and host, kept in the queue's row.

The row holds a sliding window cut into ``SLICES`` slices of the period: how many jobs
were started in each recent slice (by the database clock). A claim locks the row, counts
the starts of every slice that overlaps the last period, takes at most what is left, and
adds what it took to the current slice, in the claim's transaction. Counting whole slices
over-counts the oldest one, so the limit is never exceeded in any window of the period
(a token bucket would allow a burst plus the refill, up to twice the limit); a saturated
queue runs at ``SLICES / (SLICES + 1)`` of the limit or better.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

# Each period is cut into this many slices.
SLICES = 20

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


def _unit(word: str) -> int | None:
    if word in _UNITS:
        return _UNITS[word]
    # Plurals ("seconds", "mins"), not "ms" (milliseconds are no unit here).
    return _UNITS.get(word[:-1]) if len(word) > 2 and word.endswith("s") else None


@dataclass(frozen=True)
class Rate:
    limit: int  # job starts...
    period: float  # ...per this many seconds

    def __str__(self) -> str:
        unit = {1: "s", 60: "m", 3600: "h"}.get(int(self.period))
        return f"{self.limit}/{unit}" if unit else f"{self.limit}/{self.period:g}s"

    @property
    def slice_seconds(self) -> float:
        return self.period / SLICES

    @property
    def per_claim(self) -> int:
        """At most this many starts per claim: one slice's share of the limit."""
        return max(1, -(-self.limit // SLICES))


def parse_rate(text: str) -> Rate:
    """``"100/s"``, ``"600/m"``, ``"1000/h"`` (also ``"5/10s"``, ``"30/min"``) as a
    ``Rate``; ``ValidationError`` with a message a person can act on otherwise."""
    match = _RATE.match(str(text).lower()) if text is not None else None
    unit = _unit(match.group(3)) if match else None
    if not match or not unit:
        raise ValidationError(
            f"{text!r} is not a rate limit: write job starts per period, such as "
            '"100/s", "600/m" or "1000/h".',
            code="invalid_rate",
        )
    limit = int(match.group(1))
    multiple = int(match.group(2)) if match.group(2) else 1
    if limit < 1 or multiple < 1:
        raise ValidationError(
            f"{text!r}: a rate limit allows at least one job per period (leave it empty "
            "for no limit, or pause the queue to stop it).",
            code="invalid_rate",
        )
    return Rate(limit, float(unit * multiple))


def validate_rate(text: str) -> None:
    if text:
        parse_rate(text)


def take(window: dict | None, rate: Rate, now: float, wanted: int) -> tuple[int, dict, float]:
    """How many of ``wanted`` starts the window allows at ``now`` (epoch seconds, the
    database clock), the window with them added, and how many seconds until one more
    start would be allowed (0 when some are left).

    ``window`` is the stored ``{"size": slice seconds, "slice": index of the newest
    slice, "counts": [starts per slice, newest last]}``; a window of another slice size
    (the limit was changed) starts empty."""
    size = rate.slice_seconds
    current = math.floor(now / size)
    counts: list[int] = []
    if window and window.get("size") == size and isinstance(window.get("counts"), list):
        newest = int(window.get("slice", current))
        kept = [int(c) for c in window["counts"]][-(SLICES + 1) :]
        if newest > current:
            # The database clock went back (a failover): keep what is recorded, in place.
            current = newest
        shift = current - newest
        counts = (kept + [0] * min(shift, SLICES + 1))[-(SLICES + 1) :]
    counts = [0] * (SLICES + 1 - len(counts)) + counts
    # Slices overlapping the last period: the current one and the SLICES before it.
    used = sum(counts)
    allowed = max(0, min(wanted, rate.limit - used))
    counts[-1] += allowed
    wait = 0.0
    if rate.limit - used - allowed <= 0:
        # Free once the oldest non-empty slice leaves the window.
        running = sum(counts)
        for age, count in enumerate(counts):
            running -= count
            if count and running < rate.limit:
                # counts[age] is slice current - SLICES + age; it leaves at the start of
                # slice current + age + 1.
                wait = max(0.0, (current + age + 1) * size - now)
                break
    return allowed, {"size": size, "slice": current, "counts": _trim(counts)}, wait


def _trim(counts: list[int]) -> list[int]:
    # Leading empty slices need not be stored.
    for i, count in enumerate(counts):
        if count:
            return counts[i:]
    return []
