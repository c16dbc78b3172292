import pytest

from django_jobs import JobStatus, jobs
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueue_and_burst(workers):
    job = jobs.enqueue(add, args=[2, 3])
    code, out = workers.run("--burst")
    assert code == 0, out
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, out
    assert job.result == 5
