"""With DEBUG off the app serves its own static files (UI styles, API docs assets) after collectstatic."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.mark.django_db
def test_collected_static_files_are_served_with_debug_off(settings, tmp_path):
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)

    css = Client().get("/static/ui/app.css")
    docs_bundle = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")

    assert css.status_code == 200
    assert b"{" in b"".join(css.streaming_content)
    assert docs_bundle.status_code == 200
