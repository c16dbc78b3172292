"""Counts that survive restarts and pruning (``models/rollup.py``): the in-process
buffer, the upserts, histogram buckets and compaction."""

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.models import Rollup
from django_jobs.models.rollup import (
    BUCKETS,
    COMPLETED,
    HOUR,
    MINUTE,
    RAN,
    TOTAL,
    RollupBuffer,
    compact,
    write_tallies,
)

pytestmark = pytest.mark.django_db


def total(kind, queue="q", task="t"):
    row = Rollup.objects.filter(resolution=TOTAL, kind=kind, queue=queue, task=task).first()
    return row


def test_flushes_add_up_per_minute_and_in_the_running_total():
    buffer = RollupBuffer()
    buffer.record("default", "q", "t", COMPLETED, n=3)
    buffer.record("default", "q", "t", COMPLETED)
    assert buffer.flush() == 1
    buffer.record("default", "q", "t", COMPLETED, n=2)
    buffer.record("default", "other", "t", COMPLETED)
    assert buffer.flush() == 2
    assert total(COMPLETED).count == 6 and total(COMPLETED, queue="other").count == 1
    minutes = Rollup.objects.filter(resolution=MINUTE, kind=COMPLETED, queue="q")
    assert sum(r.count for r in minutes) == 6
    assert buffer.flush() == 0  # nothing new: nothing written


def test_histogram_buckets_hold_each_observation_once():
    buffer = RollupBuffer()
    for seconds in (0.003, 0.2, 0.25, 7.0, 5000.0):
        buffer.record("default", "q", "t", RAN, seconds)
    buffer.flush()
    row = total(RAN)
    assert row.count == 5 and row.seconds == pytest.approx(5007.453)
    counts = dict(zip(BUCKETS, row.bucket_counts(), strict=True))
    assert counts[0.005] == 1 and counts[0.25] == 2 and counts[10.0] == 1
    assert sum(row.bucket_counts()) == 4  # 5000 s is above the last bound: +Inf only


def test_compaction_folds_old_minutes_into_hours_and_keeps_totals():
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    old = now - timedelta(days=2)
    tallies = {}
    from django_jobs.models.rollup import Tally

    for minute in range(3):
        tally = Tally()
        tally.add(0.5, n=2)
        tallies[("default", old + timedelta(minutes=minute), "q", "t", RAN)] = tally
    recent = Tally()
    recent.add(None)
    tallies[("default", now - timedelta(minutes=5), "q", "t", COMPLETED)] = recent
    write_tallies("default", tallies)
    assert compact("default", now=now) == 3
    hours = list(Rollup.objects.filter(resolution=HOUR))
    assert len(hours) == 1 and hours[0].count == 6 and hours[0].seconds == pytest.approx(3.0)
    assert hours[0].period == old.replace(minute=0)
    assert Rollup.objects.filter(resolution=MINUTE, kind=RAN).count() == 0
    assert Rollup.objects.filter(resolution=MINUTE, kind=COMPLETED).count() == 1
    assert total(RAN).count == 6  # totals never move
    assert compact("default", now=now + timedelta(days=40)) == 1  # the recent minute
    assert not Rollup.objects.filter(resolution=HOUR).exists()  # older than HOURS_KEPT
    assert total(RAN).count == 6


def test_a_failed_flush_keeps_the_counts(monkeypatch):
    from django.db import DatabaseError

    import django_jobs.models.rollup as rollup

    buffer = RollupBuffer()
    buffer.record("default", "q", "t", COMPLETED, n=4)

    def broken(db, tallies):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(rollup, "write_tallies", broken)
    assert buffer.flush() == 0
    monkeypatch.undo()
    assert buffer.flush() == 1 and total(COMPLETED).count == 4
