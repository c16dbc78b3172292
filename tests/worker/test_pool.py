"""The executor pool (``worker/pool.py``): what becomes of the jobs of an executor that
crashed or was killed at its timeout in the middle of a claimed batch (at-least-once:
jobs completed but not yet written run again; none is lost)."""

from collections import Counter

import pytest

from django_jobs import JobStatus, jobs
from django_jobs.models import Job
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "breaker, error",
    [
        (tasks.crash_interpreter, "ExecutorCrashed"),  # os._exit() in the job
        (tasks.spin_forever, "JobTimeout"),  # killed at its 1 s timeout
    ],
)
def test_an_executor_lost_in_the_middle_of_its_batch_loses_no_job(workers, breaker, error):
    # Fast jobs make the executor claim dozens at once, so the breaker lands inside a
    # claimed batch with siblings before it (run, perhaps not yet written) and after it
    # (never started).
    siblings = [
        jobs.enqueue(tasks.record_label, args=[f"job-{i}"], queue="default") for i in range(30)
    ]
    broken = jobs.enqueue(breaker, args=["breaker"])
    siblings += [
        jobs.enqueue(tasks.record_label, args=[f"job-{i}"], queue="default") for i in range(30, 60)
    ]
    code, out = workers.run("--burst", "--concurrency", "1", timeout=120)
    assert code == 0, out

    broken.refresh_from_db()
    assert broken.status == JobStatus.FAILED and broken.error["type"] == error
    assert not Job.objects.held().exists()
    ran = Counter(Execution.objects.values_list("label", flat=True))
    for job in Job.objects.filter(pk__in=[j.pk for j in siblings]):
        assert job.status == JobStatus.COMPLETED
        label = job.args[0]
        assert ran[label] >= 1  # at least once: none lost
        if ran[label] == 1:
            # Ran once: a claim that was handed back before it started is not an attempt.
            assert job.attempts == 1, (label, job.attempts)
