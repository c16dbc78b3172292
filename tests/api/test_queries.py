"""The job list's SQL stays the same whatever the page holds: no query per row, no
DISTINCT (a sort of the whole filtered table at 10 million rows)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_jobs import jobs
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/jobs/"


def queries_for(client, path):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(API + path)
    assert response.status_code == 200, response.content
    return response.json(), [q["sql"] for q in captured.captured_queries]


def test_the_job_list_costs_the_same_for_5_or_40_jobs(staff):
    first = jobs.enqueue(tasks.add, args=[1, 1])
    for i in range(4):
        jobs.enqueue(tasks.add, args=[i, i], depends_on=[first])
    few, few_sql = queries_for(staff, "jobs/")
    for i in range(35):
        jobs.enqueue(tasks.add, args=[i, i], depends_on=[first])
    many, many_sql = queries_for(staff, "jobs/")
    assert len(few["results"]) == 5 and len(many["results"]) == 40
    assert len(many_sql) == len(few_sql)
    dependants = [job for job in many["results"] if job["id"] != first.pk]
    assert all(job["depends_on"] == [first.pk] for job in dependants)


def test_filters_add_no_distinct(staff):
    jobs.enqueue(tasks.add, args=[1, 1], queue="q1")
    body, sql = queries_for(staff, "jobs/?status=pending&status=failed&queue=q1")
    assert len(body["results"]) == 1
    assert not [q for q in sql if "DISTINCT" in q.upper()]
