from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.helpers.factories import PASSWORD


@pytest.fixture
def superuser_web(db) -> Client:
    """A browser session of a superuser in the Django admin."""
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD))
    return client
