"""The Content-Security-Policy without a browser: every response carries it, the UI's allows no inline script or
style, the templates hold none, and the API docs pages get only their own few allowances.
tests/browser/test_csp.py renders the pages in Chromium under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.helpers.clients import client_logged_in

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
INLINE = {
    "inline <script>": re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE),
    "<style> element": re.compile(r"<style[\s>]", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event-handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}
UI_POLICY = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
}


def directives(response) -> dict[str, list[str]]:
    parsed = {}
    for part in response["Content-Security-Policy"].split(";"):
        if part.strip():
            name, *sources = part.split()
            parsed[name] = sources
    return parsed


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT)))
def test_templates_hold_no_inline_script_or_style(template):
    text = template.read_text(encoding="utf-8")
    found = [name for name, pattern in INLINE.items() if pattern.search(text)]
    assert not found, found


def test_the_template_scan_can_fail():
    sample = '<p style="x" onclick="y()"><script>1</script><style>p{}</style><a href="javascript:z()">'
    assert all(pattern.search(sample) for pattern in INLINE.values())
    assert not INLINE["inline <script>"].search('<script src="/static/ui/app.js" defer></script>')


def test_pages_have_the_strict_policy(member):
    web = client_logged_in(member)
    for url in (reverse("ui:home"), reverse("ui:workspace-list"), reverse("ui:modes"), "/no-such-page/"):
        assert directives(web.get(url)) == UI_POLICY, url
    assert directives(web.get(reverse("ui:login"))) == UI_POLICY


def test_api_answers_carry_the_policy_too(member_client):
    assert directives(member_client.get(reverse("agents:user-me"))) == UI_POLICY
    assert directives(member_client.get("/api/v2/no-such-route")) == UI_POLICY


def test_swagger_ui_gets_data_images_only(client):
    response = client.get(reverse("schema-docs"))
    assert response.status_code == 200
    assert directives(response) == {**UI_POLICY, "img-src": ["'self'", "data:"]}
    page = response.content.decode()
    assert not INLINE["inline <script>"].search(page) and not INLINE["<style> element"].search(page)
    script = client.get(reverse("schema-docs") + "?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_redoc_gets_generated_styles_a_blob_worker_and_data_images(client):
    response = client.get(reverse("schema-redoc"))
    assert response.status_code == 200
    assert directives(response) == {
        **UI_POLICY,
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "worker-src": ["blob:"],
    }
    page = response.content.decode()
    assert not INLINE["inline <script>"].search(page) and "fonts.googleapis.com" not in page
