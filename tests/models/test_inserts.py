"""Writing one new job (``django_jobs.models.inserts``): the PostgreSQL enqueue function
and the fast ``new_job`` construction."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.signals import post_init

from django_jobs import jobs
from django_jobs.models import Job, Queue, inserts
from django_jobs.models.inserts import (
    enqueue_function,
    enqueue_function_exists,
    install_enqueue_function,
    new_job,
)
from tests.testapp.tasks import add, noop

COMPARED = [
    f.attname
    for f in Job._meta.concrete_fields
    if f.attname not in ("id", "created_at", "scheduled_at", "trace_context")
]


@contextmanager
def statements():
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def function_exists() -> bool:
    with connection.cursor() as cursor:
        return enqueue_function_exists(cursor)


@contextmanager
def prepared_statements_allowed():
    """As if the project's OPTIONS said ``prepare_threshold=0``; then as it was."""
    options = connection.settings_dict["OPTIONS"]
    connection.ensure_connection()
    raw = connection.connection
    missing = object()
    before_option, before_raw = options.get("prepare_threshold", missing), raw.prepare_threshold
    options["prepare_threshold"] = raw.prepare_threshold = 0
    try:
        yield
    finally:
        if before_option is missing:
            del options["prepare_threshold"]
        else:
            options["prepare_threshold"] = before_option
        raw.prepare_threshold = before_raw


@pytest.mark.postgresql
@pytest.mark.django_db
def test_migrate_installs_the_function_and_enqueue_calls_it():
    assert function_exists()
    jobs.enqueue(noop)  # the process looks for the function once
    with statements() as seen:
        job = jobs.enqueue(add, args=[1, 2], queue="fn-q", delay=30, tags=["t"])
    assert len(seen) == 1 and seen[0].startswith(f"SELECT * FROM {enqueue_function()[0]}(")
    job.refresh_from_db()
    assert job.status == "pending" and job.args == [1, 2] and job.tags == ["t"]
    assert timedelta(seconds=29) < job.scheduled_at - job.created_at < timedelta(seconds=31)
    assert Queue.objects.filter(name="fn-q").exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_function_and_the_written_out_insert_write_the_same_row():
    user = get_user_model().objects.create_user("fn-owner")
    options = {
        "args": [1, 2],
        "queue": "same-row",
        "priority": "high",
        "delay": 60,
        "tags": ["a", "b"],
        "metadata": {"k": [1, None, "x"]},
        "max_retries": 7,
        "timeout": 12.5,
        "owner": user,
    }
    through_function = jobs.enqueue(add, **options)
    name = enqueue_function()[0]
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP FUNCTION {name}")
        # This process still believes the function exists: in autocommit, the failed
        # call is followed by the written-out INSERT.
        written_out = jobs.enqueue(add, **options)
        assert inserts._function_state[inserts._function_key(connection)][0] is False
        with statements() as seen:
            jobs.enqueue(noop)
        assert "pg_notify" in seen[0] and name not in seen[0]
    finally:
        install_enqueue_function("default")
    assert function_exists()
    with statements() as seen:
        jobs.enqueue(noop)
    assert seen[-1].startswith(f"SELECT * FROM {name}(")  # after one look for it

    if inserts.uses_psycopg3(connection):
        with prepared_statements_allowed():
            prepared = jobs.enqueue(add, **options)
        paths = [through_function.pk, written_out.pk, prepared.pk]
    else:
        paths = [through_function.pk, written_out.pk]
    rows = Job.objects.filter(pk__in=paths).order_by("pk")
    first, *others = (dict(r) for r in rows.values(*COMPARED, "created_at", "scheduled_at"))
    assert len(others) == len(paths) - 1
    for row in (first, *others):
        delay = row.pop("scheduled_at") - row.pop("created_at")
        assert timedelta(seconds=59) < delay < timedelta(seconds=61)
    assert all(other == first for other in others)
    assert first["owner_id"] == user.pk and first["tags"] == ["a", "b"]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_function_dropped_inside_a_transaction_fails_that_transaction_loudly():
    name = enqueue_function()[0]
    jobs.enqueue(noop)  # the process has looked: the function exists
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP FUNCTION {name}")
        with pytest.raises(Exception, match="does not exist"):
            with transaction.atomic():
                jobs.enqueue(noop)
        assert Job.objects.count() == 1  # nothing half-written
        # The next transaction (ATOMIC_REQUESTS: every request's) writes it out.
        with transaction.atomic():
            jobs.enqueue(noop)
        assert Job.objects.count() == 2
    finally:
        install_enqueue_function("default")
        inserts._function_state.clear()


@pytest.mark.django_db
def test_new_job_is_the_job_the_model_would_build():
    values = {"task_name": "x.y", "args": [1], "queue": "q", "priority": 3, "status": "pending"}
    fast, slow = new_job(**values), Job(**values)
    clocks = ("_state", "created_at", "scheduled_at")  # timezone.now() at each call
    assert {k: v for k, v in fast.__dict__.items() if k not in clocks} == {
        k: v for k, v in slow.__dict__.items() if k not in clocks
    }
    assert abs(fast.created_at - slow.created_at) < timedelta(seconds=5)
    assert fast._state.adding and fast._state.db is None
    # Mutable defaults are the job's own.
    other = new_job(**values)
    other.tags.append("mine")
    other.errors.append({})
    assert fast.tags == [] and fast.errors == []


@pytest.mark.django_db
def test_new_job_sends_init_signals_when_someone_listens():
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=Job)
    try:
        job = new_job(task_name="x.y")
    finally:
        post_init.disconnect(receiver, sender=Job)
    assert seen == [job]


@pytest.mark.django_db
def test_install_is_a_no_op_off_postgresql_or_when_present():
    install_enqueue_function("default")  # any database: never raises
    install_enqueue_function("default")
    if connection.vendor == "postgresql":
        assert function_exists()
    else:
        assert inserts._function_key(connection) not in inserts._function_state


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_process_that_found_no_function_looks_again_later(monkeypatch):
    name, create = enqueue_function()
    jobs.enqueue(noop)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP FUNCTION {name}")
        jobs.enqueue(noop)  # fails over to the written-out statement, remembers "no"
        with connection.cursor() as cursor:
            cursor.execute(create)  # another process's migrate
        with statements() as seen:
            jobs.enqueue(noop)
        assert name not in seen[-1]  # not asked again yet
        monkeypatch.setattr(inserts, "RECHECK_SECONDS", 0.0)
        with statements() as seen:
            jobs.enqueue(noop)
        assert seen[-1].startswith(f"SELECT * FROM {name}(")
    finally:
        install_enqueue_function("default")
    assert Job.objects.count() == 4


@pytest.mark.postgresql
@pytest.mark.django_db
def test_where_the_project_allows_prepared_statements_the_insert_is_prepared():
    if not inserts.uses_psycopg3(connection):
        pytest.skip("psycopg 2 prepares nothing")
    with prepared_statements_allowed():
        with statements() as seen:
            job = jobs.enqueue(add, args=[2, 3], queue="prepared-q", delay=5)
            again = jobs.enqueue(add, args=[4, 5], queue="prepared-q")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ["WITH q AS (INSERT INTO %"],
            )
            assert cursor.fetchone()[0] == 1
    assert len(seen) == 2 and all(sql.startswith("WITH q AS (INSERT") for sql in seen)
    job.refresh_from_db()
    assert job.args == [2, 3] and job.queue == "prepared-q" and job.status == "pending"
    assert timedelta(seconds=4) < job.scheduled_at - job.created_at < timedelta(seconds=6)
    assert Job.objects.get(pk=again.pk).args == [4, 5]
    assert Queue.objects.filter(name="prepared-q").count() == 1
