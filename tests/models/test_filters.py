"""The named subsets of jobs (``models/filters.py``)."""

import pytest
from django.contrib.auth.models import AnonymousUser, User

from django_jobs import jobs
from django_jobs.models import Job
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db


def test_followable_by_is_the_owners_jobs_or_all_for_staff():
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    staff = User.objects.create_user("staff", is_staff=True)
    hers = jobs.enqueue(add, args=[1, 1], owner=alice)
    his = jobs.enqueue(add, args=[2, 2], owner=bob)
    nobodys = jobs.enqueue(add, args=[3, 3])

    def followed(user):
        return set(Job.objects.followable_by(user).values_list("pk", flat=True))

    assert followed(alice) == {hers.pk}
    assert followed(bob) == {his.pk}
    assert followed(staff) == {hers.pk, his.pk, nobodys.pk}
    assert followed(AnonymousUser()) == followed(None) == set()
    alice.is_active = staff.is_active = False
    assert followed(alice) == followed(staff) == set()
