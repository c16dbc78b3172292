"""Chains, batches, dependencies and unique jobs."""

import math
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from django_jobs import JobStatus, jobs
from django_jobs.models import Batch, Job
from django_jobs.testing import run_jobs
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Execution


def labels():
    return list(Execution.objects.order_by("id").values_list("label", flat=True))


# -- dependencies --------------------------------------------------------------------------


@pytest.mark.django_db
def test_dependent_waits_then_becomes_pending_when_all_completed():
    a = jobs.enqueue(tasks.record_label, args=["a"])
    b = jobs.enqueue(tasks.record_label, args=["b"])
    c = jobs.enqueue(tasks.record_label, args=["c"], depends_on=[a, b.pk])
    assert c.status == JobStatus.WAITING
    assert set(c.depends_on.values_list("pk", flat=True)) == {a.pk, b.pk}
    run_jobs(max_jobs=1)  # a only (FIFO)
    c.refresh_from_db()
    assert c.status == JobStatus.WAITING
    run_jobs()
    c.refresh_from_db()
    assert c.status == JobStatus.COMPLETED and labels() == ["a", "b", "c"]


@pytest.mark.django_db
def test_dependency_on_finished_jobs():
    done = jobs.enqueue(tasks.add, args=[1, 1])
    run_jobs()
    assert jobs.enqueue(tasks.add, args=[1, 2], depends_on=[done]).status == JobStatus.PENDING
    failed = jobs.enqueue(tasks.permanent_failure, args=["x"])
    run_jobs()
    late = jobs.enqueue(tasks.add, args=[1, 2], depends_on=[done, failed])
    assert late.status == JobStatus.CANCELLED
    assert late.cancel_reason == f"dependency {failed.pk} failed"


@pytest.mark.django_db
def test_unknown_dependency_is_refused_and_nothing_written():
    with pytest.raises(ValueError, match="no job with id 999999"):
        jobs.enqueue(tasks.add, args=[1, 2], depends_on=[999999])
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_failure_cancels_dependents_transitively():
    root = jobs.enqueue(tasks.permanent_failure, args=["root"])
    child = jobs.enqueue(tasks.add, args=[1, 1], depends_on=[root])
    grandchild = jobs.enqueue(tasks.add, args=[1, 1], depends_on=[child])
    run_jobs()
    child.refresh_from_db()
    grandchild.refresh_from_db()
    assert (
        child.status == JobStatus.CANCELLED
        and child.cancel_reason == f"dependency {root.pk} failed"
    )
    assert grandchild.status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_cancelling_a_dependency_cancels_the_dependent():
    a = jobs.enqueue(tasks.add, args=[1, 1])
    b = jobs.enqueue(tasks.add, args=[1, 1], depends_on=[a])
    assert jobs.cancel(a.pk)
    b.refresh_from_db()
    assert b.status == JobStatus.CANCELLED and b.cancel_reason == f"dependency {a.pk} cancelled"


# -- chains --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_chain_runs_in_order_with_shared_options():
    chain = jobs.chain(
        [
            (tasks.record_label, ["one"], {}),
            (tasks.record_label, ["two"]),
            (tasks.add, (), {"a": 1, "b": 2}),
        ],
        queue="orders",
        tags=["c"],
    )
    steps = chain.jobs
    assert [j.chain_index for j in steps] == [0, 1, 2]
    assert [j.status for j in steps] == ["pending", "waiting", "waiting"]
    assert {j.queue for j in steps} == {"orders"} and all(j.tags == ["c"] for j in steps)
    # Every step reaches the whole chain.
    assert [j.pk for j in steps[2].batch.jobs] == [j.pk for j in steps]
    run_jobs()
    assert labels() == ["one", "two"]
    chain.refresh_from_db()
    assert chain.completed == 3 and chain.is_finished and chain.progress == 1.0


@pytest.mark.django_db(transaction=True)
def test_chain_middle_step_fails_permanently(workers):
    chain = jobs.chain(
        [
            (tasks.record_label, ["first"]),
            (tasks.permanent_failure, ["middle"]),
            (tasks.record_label, ["third"]),
            (tasks.record_label, ["fourth"]),
        ]
    )
    code, out = workers.run("--burst")
    assert code == 0, out
    first, middle, third, fourth = chain.jobs
    assert first.status == JobStatus.COMPLETED
    assert middle.status == JobStatus.FAILED
    for step in (third, fourth):
        assert step.status == JobStatus.CANCELLED
        assert str(middle.pk) in step.cancel_reason and "failed" in step.cancel_reason
    assert labels() == ["first", "middle"]
    chain.refresh_from_db()
    assert (chain.completed, chain.failed, chain.cancelled) == (1, 1, 2) and chain.is_finished


# -- batches -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_batch_items_and_validation():
    batch = jobs.enqueue_batch(tasks.add, items=[{"a": 1, "b": 2}, ([3, 4], {})], priority="high")
    assert batch.total == 2 and batch.enqueued == 2 and batch.progress == 0.0
    assert sorted(Job.objects.filter(batch=batch).values_list("priority", flat=True)) == [50, 50]
    run_jobs()
    batch.refresh_from_db()
    assert batch.completed == 2 and batch.progress == 1.0 and batch.is_finished
    with pytest.raises(TypeError, match="items\\[1\\]"):
        jobs.enqueue_batch(tasks.add, items=[{"a": 1}, "bad"])
    with pytest.raises(TypeError, match="JSON"):
        jobs.enqueue_batch(tasks.add, items=[{"a": object()}])
    assert Batch.objects.count() == 1


@pytest.mark.django_db
def test_a_batch_writes_sql_null_where_a_job_has_no_value():
    """MySQL's JSON_TABLE turned a JSON null into a JSON ``null`` value, not SQL NULL:
    ``result__isnull=True`` missed every job of a batch there."""
    batch = jobs.enqueue_batch(tasks.add, items=[([1, 2], {}), ([3, 4], {})])
    pending = Job.objects.filter(batch=batch)
    assert pending.filter(result__isnull=True, error__isnull=True).count() == 2
    assert pending.filter(started_at__isnull=True, owner__isnull=True).count() == 2


@pytest.mark.django_db
def test_empty_batch_completes_at_once():
    batch = jobs.enqueue_batch(tasks.add, items=[], on_complete=tasks.batch_done)
    assert batch.is_finished and batch.on_complete_job_id is not None


@pytest.mark.django_db(transaction=True)
def test_batch_of_10000_in_few_inserts_drained_by_two_processes(workers):
    n, size = 10_000, 1000
    with CaptureQueriesContext(connection) as queries:
        batch = jobs.enqueue_batch(
            tasks.record_item,
            items=[{"n": i} for i in range(n)],
            batch_size=size,
            on_complete=tasks.batch_done,
        )
    job_table = Job._meta.db_table
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "COPY"))
        and job_table in q["sql"]
        and "batch" not in q["sql"].split("(")[0]
    ]
    if connection.vendor == "postgresql":
        assert len(writes) == 1 and writes[0].startswith("COPY"), writes  # one COPY
    else:
        assert 1 <= len(writes) <= math.ceil(n / size), len(writes)
    assert Job.objects.filter(batch=batch).count() == n
    code, out = workers.run("--processes", "2", "--burst", timeout=600)
    assert code == 0, out
    batch.refresh_from_db()
    assert batch.completed == n and batch.is_finished
    assert labels().count(f"batch-done:{batch.pk}") == 1
    assert Execution.objects.filter(label__startswith="item-").count() == n


# -- diamond -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_diamond_of_dependencies_drained_by_several_workers(workers):
    for round_ in range(3):
        a = jobs.enqueue(tasks.sleeper, args=[f"A{round_}", 0.2])
        b = jobs.enqueue(tasks.sleeper, args=[f"B{round_}", 0.3], depends_on=[a])
        c = jobs.enqueue(tasks.sleeper, args=[f"C{round_}", 0.1], depends_on=[a])
        jobs.enqueue(tasks.record_label, args=[f"D{round_}"], depends_on=[b, c])
    for _ in range(3):
        workers.start("--concurrency", "2")
    wait_until(lambda: all(f"D{r}" in labels() for r in range(3)), timeout=60, message="D")
    seen = labels()
    for r in range(3):
        assert seen.count(f"D{r}") == 1
        d = seen.index(f"D{r}")
        assert seen.index(f"B{r}:done") < d and seen.index(f"C{r}:done") < d
        assert seen.index(f"A{r}:done") < seen.index(f"B{r}") and seen.index(
            f"A{r}:done"
        ) < seen.index(f"C{r}")


# -- unique jobs ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_unique_key_returns_the_unfinished_job():
    first = jobs.enqueue(tasks.add, args=[1, 1], unique_key="invoice-42")
    again = jobs.enqueue(tasks.add, args=[9, 9], unique_key="invoice-42")
    assert again.pk == first.pk and Job.objects.count() == 1
    run_jobs()
    after = jobs.enqueue(tasks.add, args=[1, 1], unique_key="invoice-42")
    assert after.pk != first.pk  # the first one finished: the key is free again


@pytest.mark.django_db
def test_unique_task_is_keyed_by_its_arguments():
    a = jobs.enqueue(tasks.unique_by_args, args=[1])
    assert jobs.enqueue(tasks.unique_by_args, args=[1]).pk == a.pk
    assert jobs.enqueue(tasks.unique_by_args, args=[2]).pk != a.pk


@pytest.mark.django_db
def test_unique_key_freed_by_cancel_and_retaken_by_retry():
    a = jobs.enqueue(tasks.add, args=[1, 1], unique_key="k")
    jobs.cancel(a.pk)
    b = jobs.enqueue(tasks.add, args=[1, 1], unique_key="k")
    assert b.pk != a.pk
    with pytest.raises(ValueError, match="unique"):
        jobs.retry(a.pk)  # b holds the key now


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_enqueue_the_same_unique_key_once():
    barrier = threading.Barrier(20)
    ids, errors = [], []

    def enqueue():
        try:
            barrier.wait()
            ids.append(jobs.enqueue(tasks.add, args=[1, 2], unique_key="race").pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(ids) == 20 and len(set(ids)) == 1
    assert Job.objects.filter(unique_key="race").count() == 1


@pytest.mark.django_db
def test_deleting_an_unfinished_dependency_cancels_its_dependents():
    a = jobs.enqueue(tasks.add, args=[1, 1])
    b = jobs.enqueue(tasks.add, args=[1, 1], depends_on=[a])
    Job.objects.filter(pk=a.pk).delete()
    b.refresh_from_db()
    assert b.status == JobStatus.CANCELLED and b.cancel_reason == f"dependency {a.pk} deleted"


@pytest.mark.django_db
def test_deleting_an_unfinished_batch_job_lets_the_batch_finish():
    batch = jobs.enqueue_batch(
        tasks.add, items=[{"a": 1, "b": 1}] * 2, on_complete=tasks.batch_done
    )
    first, _second = batch.jobs
    first.delete()
    run_jobs(queues=["default"])
    batch.refresh_from_db()
    assert batch.is_finished and batch.cancelled == 1 and batch.completed == 1
    assert batch.on_complete_job_id is not None


@pytest.mark.django_db
def test_chain_counters_are_fresh_in_eager_mode(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "EAGER": True}
    chain = jobs.chain([(tasks.add, [1, 2]), (tasks.add, [3, 4])])
    assert chain.completed == 2 and chain.is_finished
