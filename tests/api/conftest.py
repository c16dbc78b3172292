"""API clients for each kind of caller: staff, an authenticated non-staff user, nobody."""

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient


@pytest.fixture
def staff():
    client = APIClient()
    client.force_authenticate(User.objects.create_user("staff", password="x", is_staff=True))
    return client


@pytest.fixture
def user():
    client = APIClient()
    client.force_authenticate(User.objects.create_user("user", password="x"))
    return client


@pytest.fixture
def anonymous():
    return APIClient()
