"""An admin test client logged in as a superuser."""

import pytest
from django.contrib.auth.models import User


@pytest.fixture
def superuser(client):
    client.force_login(User.objects.create_superuser("root", "r@x.com", "pw"))
    return client
