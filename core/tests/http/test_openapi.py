"""The OpenAPI schema generates cleanly and declares every status a route can return (docs/concepts.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator

BASE_DIR = Path(__file__).resolve().parents[3]
WRITE_METHODS = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def test_schema_generates_without_warnings_or_errors():
    """`manage.py spectacular --validate --fail-on-warn` is clean (no duplicate components, no guesses)."""
    env = {**os.environ, "DEBUG": "true"}
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", os.devnull],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Warning" not in result.stderr, result.stderr[-4000:]


def test_both_bearer_schemes_are_declared(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["agentToken"]["scheme"] == "bearer"
    assert schemes["userToken"]["scheme"] == "bearer"


def test_every_authenticated_operation_declares_401(schema):
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if operation.get("security") and {} not in operation["security"] and "401" not in operation["responses"]
    ]
    assert not missing, missing


def test_every_operation_with_a_body_or_query_declares_400(schema):
    missing = []
    for path, method, operation in _operations(schema):
        takes_input = "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", []))
        if takes_input and "400" not in operation["responses"]:
            missing.append(f"{method.upper()} {path}")
    assert not missing, missing


def test_every_operation_on_an_object_declares_404(schema):
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if "{" in path and "404" not in operation["responses"]
    ]
    assert not missing, missing


def test_agent_routes_use_the_agent_scheme_and_declare_scope_denial(schema):
    scoped = {
        ("get", "/api/v2/workspaceagents/me/manifest"),
        ("patch", "/api/v2/workspaceagents/me/app-status"),
        ("patch", "/api/v2/workspaceagents/me/logs"),
        ("get", "/api/v2/workspaceagents/me/gitsshkey"),
        ("get", "/api/v2/workspaceagents/me/external-auth"),
        ("get", "/api/v2/workspaceagents/me/gitauth"),
    }
    seen = set()
    for path, method, operation in _operations(schema):
        if not path.startswith("/api/v2/workspaceagents/me/"):
            continue
        assert operation["security"] == [{"agentToken": []}], path
        assert "401" in operation["responses"], path
        if (method, path) in scoped:
            seen.add((method, path))
            denied = operation["responses"]["403"]["content"]["application/json"]["schema"]
            assert denied["$ref"].endswith("/ScopeDenied"), path
    assert seen == scoped


def test_user_and_management_writes_declare_403(schema):
    """Auditors are refused management writes, and a session-cookie write without a CSRF token is refused, so
    every write on a user-auth route may answer 403."""
    exempt = {("post", "/api/v2/users/login")}  # no authentication, so no CSRF check either
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if method in WRITE_METHODS
        and not path.startswith("/api/v2/workspaceagents/me/")
        and (method, path) not in exempt
        and "403" not in operation["responses"]
    ]
    assert not missing, missing


@pytest.mark.django_db
def test_schema_and_docs_are_served(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/v2/workspaceagents/me/manifest" in response.json()["paths"]
    assert api_client.get("/api/schema/docs/").status_code == 200


def test_every_operation_with_a_body_declares_413(schema):
    """Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE are refused on every route that takes one."""
    missing = [
        f"{method.upper()} {path}"
        for path, method, operation in _operations(schema)
        if "requestBody" in operation and "413" not in operation["responses"]
    ]
    assert not missing, missing
    login = schema["paths"]["/api/v2/users/login"]["post"]["responses"]["413"]
    assert login["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
