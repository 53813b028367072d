"""GET /metrics and its series (core/metrics.py, core/http/metrics.py; docs/operations.md#metrics): who may read it,
what each counter counts, that labels stay bounded and hold nothing secret, and that the shipped Grafana dashboard
and alert rules use only series the app exports. Several workers under gunicorn: tests/test_metrics_multiprocess.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from django.db import DatabaseError, transaction
from django.test import Client
from django.urls import reverse
from prometheus_client.core import GaugeMetricFamily
from rest_framework.test import APIClient, APIRequestFactory

from agents.apis.agent import AgentManifestApi
from agents.models import Workspace
from agents.registry import route_entries
from agents.services.tokens import agent_token_issue
from core import metrics, tokens
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import PASSWORD, AgentFactory, UserFactory, WorkspaceFactory
from tests.helpers.metrics import METRICS_TOKEN, Samples, label_values, parse_samples, sample_value
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "agents:agent-manifest"
AGENT_REQUESTS = "coderauth_agent_requests_total"
DURATION_COUNT = "coderauth_http_request_duration_seconds_count"
TOKENS_ISSUED = "coderauth_tokens_issued_total"
AUDIT_EVENTS = "coderauth_audit_events_total"


def _get_metrics(authorization: str | None = None, method: str = "get"):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return getattr(Client(), method)(reverse("metrics"), headers=headers)


@pytest.fixture
def scrape_text(settings):
    """Reads /metrics with the right token; the raw text."""
    settings.CODERAUTH_METRICS_TOKEN = METRICS_TOKEN

    def read() -> str:
        response = _get_metrics(f"Bearer {METRICS_TOKEN}")
        assert_status(response, 200)
        return response.content.decode()

    return read


@pytest.fixture
def scrape(scrape_text):
    """Reads /metrics with the right token; its samples."""
    return lambda: parse_samples(scrape_text())


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return sample_value(after, name, **labels) - sample_value(before, name, **labels)


def _moved_in_total(before: Samples, after: Samples, name: str) -> float:
    return sum(value for (sample, _), value in after.items() if sample == name) - sum(
        value for (sample, _), value in before.items() if sample == name
    )


# --- Who may read it -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "head", "post"])
@pytest.mark.parametrize("authorization", [None, f"Bearer {METRICS_TOKEN}", "Bearer "])
def test_metrics_does_not_exist_while_no_token_is_set(settings, method, authorization):
    """Unset, /metrics answers exactly as a path that does not exist, whatever is sent."""
    settings.CODERAUTH_METRICS_TOKEN = ""
    headers = {"Authorization": authorization} if authorization is not None else {}
    unknown = getattr(Client(), method)(f"/no-such-page-{uuid.uuid4().hex}", headers=headers)

    response = _get_metrics(authorization, method)

    assert response.status_code == unknown.status_code == 404
    assert response.content == unknown.content


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer x{METRICS_TOKEN}",
        f"Basic {METRICS_TOKEN}",
        f"Token {METRICS_TOKEN}",
        METRICS_TOKEN,
        "Bearer ünïcödé",
    ],
)
def test_metrics_refuses_a_missing_or_wrong_token_with_a_json_401(settings, authorization):
    settings.CODERAUTH_METRICS_TOKEN = METRICS_TOKEN

    response = _get_metrics(authorization)

    assert_status(response, 401)
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "CODERAUTH_METRICS_TOKEN" in response.json()["detail"]
    assert METRICS_TOKEN not in response.content.decode()
    assert "coderauth_" not in response.content.decode()


def test_metrics_compares_the_token_in_constant_time():
    """Security regression: the comparison is hmac.compare_digest's, never ==, which stops at the first
    differing character and so tells a guesser by its timing how much of the guess was right."""
    source = (ROOT / "core" / "http" / "metrics.py").read_text()
    assert "hmac.compare_digest(_bearer_token(request).encode(), expected.encode())" in source


def test_metrics_answers_every_series_in_the_text_format(scrape_text, settings):
    response = _get_metrics(f"bearer {METRICS_TOKEN}")  # the scheme is case-insensitive, as in RFC 7235

    assert_status(response, 200)
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    for name, kind in (
        (AGENT_REQUESTS, "counter"),
        ("coderauth_http_request_duration_seconds", "histogram"),
        (AUDIT_EVENTS, "counter"),
        (TOKENS_ISSUED, "counter"),
    ):
        assert f"# TYPE {name} {kind}\n" in text
    # No `<name>_created` series (label values such as action="user.gitsshkey_created" are fine).
    assert not re.search(r"^\w+_created[{ ]", text, re.MULTILINE), (
        "the same series as under gunicorn's multiprocess mode"
    )


def test_metrics_answers_only_get_and_head(scrape_text):
    assert_status(_get_metrics(f"Bearer {METRICS_TOKEN}", "head"), 200)
    response = _get_metrics(f"Bearer {METRICS_TOKEN}", "post")
    assert_status(response, 405)
    assert response["Allow"] == "GET, HEAD"


def test_metrics_token_must_be_long_enough_to_start():
    """A short token is refused at start-up, naming the variable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODERAUTH_")}
    env.update(
        DJANGO_SETTINGS_MODULE="coderauth.settings",
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="example.com",
        CODERAUTH_METRICS_TOKEN="too-short",
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CODERAUTH_METRICS_TOKEN must be at least 32 characters" in result.stderr


# --- Agent requests by route and outcome -------------------------------------------------------------


def test_agent_requests_are_counted_by_route_and_outcome(scrape, agent, agent_token, member_client):
    client = client_for_agent_token(agent_token)
    before = scrape()

    assert_status(client.get(reverse(MANIFEST)), 200)
    Workspace.objects.filter(pk=agent.workspace_id).update(permission_mode="no-user-data")
    assert_status(client.get(reverse("agents:agent-gitsshkey")), 403)
    assert_status(APIClient().get(reverse(MANIFEST)), 401)  # no token
    assert_status(client_for_agent_token("cda_malformed").get(reverse(MANIFEST)), 401)
    assert_status(client_for_agent_token(tokens.generate("agent").plaintext).get(reverse(MANIFEST)), 401)
    assert_status(member_client.get(reverse(MANIFEST)), 401)  # a user token on an agent route
    assert_status(member_client.get(reverse("agents:user-me")), 200)  # not an agent route: not counted

    after = scrape()
    assert _moved(before, after, AGENT_REQUESTS, route="agent-manifest", outcome="allowed") == 1
    assert _moved(before, after, AGENT_REQUESTS, route="agent-gitsshkey", outcome="denied") == 1
    assert _moved(before, after, AGENT_REQUESTS, route="agent-manifest", outcome="rejected") == 4
    assert _moved_in_total(before, after, AGENT_REQUESTS) == 6


def test_a_revoked_token_is_counted_as_rejected(scrape, agent, member):
    issued = agent_token_issue(actor=member, agent=agent, name="soon revoked")
    client = client_for_agent_token(issued.plaintext)
    assert_status(client.get(reverse(MANIFEST)), 200)
    issued.token.revoked_at = issued.token.created_at
    issued.token.save(update_fields=["revoked_at"])
    before = scrape()

    assert_status(client.get(reverse(MANIFEST)), 401)

    assert _moved(before, scrape(), AGENT_REQUESTS, route="agent-manifest", outcome="rejected") == 1


def test_agent_route_labels_are_the_route_registry_names(scrape, agent_client):
    for name in (MANIFEST, "agents:agent-gitsshkey", "agents:agent-child-token"):
        agent_client.get(reverse(name))
    APIClient().get(reverse("agents:agent-logs"))

    routes = label_values(scrape(), AGENT_REQUESTS, "route")

    agent_routes = {entry.view_name for entry in route_entries() if entry.agent_reachable}
    assert {"agent-manifest", "agent-gitsshkey", "agent-child-token", "agent-logs"} <= routes
    assert routes <= agent_routes | {metrics.OTHER_ROUTE}


def test_an_agent_view_called_outside_the_url_configuration_counts_as_other(scrape, agent_token):
    before = scrape()
    request = APIRequestFactory().get("/anywhere", HTTP_AUTHORIZATION=f"Bearer {agent_token}")

    assert AgentManifestApi.as_view()(request).status_code == 200

    assert _moved(before, scrape(), AGENT_REQUESTS, route="other", outcome="allowed") == 1


def test_counting_adds_no_query_to_the_agent_hot_path(scrape, agent_client, django_assert_num_queries):
    """The hot path stays one query (agents/tests/apis/test_authentication.py's budget), counted or not; and a
    scrape reads no session, user or table."""
    agent_client.get(reverse(MANIFEST))  # the first use writes last_used_at
    before = scrape()

    with django_assert_num_queries(1):
        assert_status(agent_client.get(reverse(MANIFEST)), 200)
    with django_assert_num_queries(0):
        after = scrape()

    assert _moved(before, after, AGENT_REQUESTS, route="agent-manifest", outcome="allowed") == 1


# --- Request duration by URL name and status class -------------------------------------------------


def not_ready() -> list[str]:
    return ["the test says so"]


def test_request_duration_is_labelled_by_url_name_and_status_class(scrape, settings, agent_client):
    settings.CODERAUTH_READINESS_CHECKS = ["tests.test_metrics.not_ready"]
    before = scrape()

    assert_status(agent_client.get(reverse(MANIFEST)), 200)
    assert_status(APIClient().get(reverse(MANIFEST)), 401)
    assert_status(Client().get(reverse("readyz")), 503)
    assert_status(Client().get(reverse("admin:index")), 302)  # to the sign-in page

    after = scrape()
    assert _moved(before, after, DURATION_COUNT, route="agents:agent-manifest", status_class="2xx") == 1
    assert _moved(before, after, DURATION_COUNT, route="agents:agent-manifest", status_class="4xx") == 1
    assert _moved(before, after, DURATION_COUNT, route="readyz", status_class="5xx") == 1
    assert _moved(before, after, DURATION_COUNT, route="admin:index", status_class="3xx") == 1
    assert sample_value(after, "coderauth_http_request_duration_seconds_sum", route="readyz", status_class="5xx") > 0


def test_unknown_paths_create_no_series(scrape):
    """Security regression: label values come from the URL configuration, never from the request, so a client
    sending random paths cannot grow the number of series (each one costs Prometheus memory)."""
    scrape()  # the scrape's own series exist from here on
    before = scrape()
    marker = uuid.uuid4().hex
    paths = [
        f"/api/v2/{marker}",
        f"/api/v2/workspaceagents/me/{marker}",
        f"/api/v2/workspaceagents/{marker}/tokens",
        f"/{marker}",
        f"/static/{marker}.css",
        f"/admin/{marker}/",
    ]
    for path in paths:
        Client().get(path)
    after = scrape()

    assert marker not in "".join(str(key) for key in after)
    new_series = {labels for name, labels in set(after) - set(before)}
    assert {dict(labels)["route"] for labels in new_series} <= {metrics.UNMATCHED_ROUTE}
    unmatched = sum(
        _moved(before, after, DURATION_COUNT, route=metrics.UNMATCHED_ROUTE, status_class=status_class)
        for status_class in metrics.STATUS_CLASSES[1:]
    )
    assert unmatched == len(paths)
    assert _moved_in_total(before, after, AGENT_REQUESTS) == 0


# --- Tokens issued and audit events, counted on commit ----------------------------------------------


def _login(api: APIClient, user) -> str:
    response = api.post(reverse("agents:user-login"), {"username": user.username, "password": PASSWORD}, format="json")
    assert_status(response, 201)
    return response.json()["session_token"]


def test_tokens_issued_are_counted_by_kind_once_committed(
    scrape, agent_client, member, django_capture_on_commit_callbacks
):
    before = scrape()
    api = APIClient()

    with django_capture_on_commit_callbacks(execute=True):
        _login(api, member)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {_login(api, member)}")
    with django_capture_on_commit_callbacks(execute=True):
        assert_status(api.post(reverse("agents:user-token-list"), {"name": "cli"}, format="json"), 201)
        agent = AgentFactory(workspace=WorkspaceFactory(owner=member))
        assert_status(api.post(reverse("agents:agent-token-list", args=[agent.pk]), {}, format="json"), 201)
        child = agent_client.post(reverse("agents:agent-child-token"), {"name": "renewal"}, format="json")
        assert_status(child, 201)
        rotated = client_for_agent_token(child.json()["token"]).post(reverse("agents:agent-token-rotate"))
        assert_status(rotated, 201)

    after = scrape()
    for kind in metrics.TOKEN_KINDS:
        assert _moved(before, after, TOKENS_ISSUED, kind=kind) == 1, kind
    # The second login ran outside the capture: the test's transaction never commits, so it never counted.
    assert _moved_in_total(before, after, TOKENS_ISSUED) == len(metrics.TOKEN_KINDS)


def test_a_token_rolled_back_with_its_transaction_is_not_counted(
    scrape, agent, member, django_capture_on_commit_callbacks
):
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            agent_token_issue(actor=member, agent=agent, name="never committed")
            raise RuntimeError("the change fails after the token was made")
        agent_token_issue(actor=member, agent=agent, name="committed")

    assert _moved(before, scrape(), TOKENS_ISSUED, kind=metrics.TOKEN_AGENT) == 1


def test_audit_events_are_counted_by_action_once_committed(scrape, django_capture_on_commit_callbacks):
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            metrics.audit_event_recorded("workspace.created")
        with pytest.raises(RuntimeError), transaction.atomic():
            metrics.audit_event_recorded("workspace.created")
            metrics.audit_event_recorded("agent.created")
            raise RuntimeError("rolled back with its change")

    after = scrape()
    assert _moved(before, after, AUDIT_EVENTS, action="workspace.created") == 1
    assert _moved(before, after, AUDIT_EVENTS, action="agent.created") == 0


def test_a_label_value_outside_its_fixed_set_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        metrics.token_issued(kind="session")
    with pytest.raises(ValueError, match="not one of"):
        metrics.agent_request_decided(route="agent-manifest", outcome="maybe")


# --- Nothing secret, nothing identifying --------------------------------------------------------------


def test_metrics_hold_no_token_username_path_or_id(scrape_text, django_capture_on_commit_callbacks):
    """Security regression: after logins, tokens issued, agent requests allowed, denied and rejected, the scrape
    holds no token (nor a 16-character piece of one), no username, no workspace or agent name or id, no path."""
    owner = UserFactory(username="metrics-probe-owner")
    workspace = WorkspaceFactory(owner=owner, name="metrics-probe-workspace")
    agent = AgentFactory(workspace=workspace, name="metrics-probe-agent")
    api = APIClient()
    with django_capture_on_commit_callbacks(execute=True):
        session_token = _login(api, owner)
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {session_token}")
        issued = api.post(reverse("agents:agent-token-list", args=[agent.pk]), {}, format="json").json()
        agent_client = client_for_agent_token(issued["token"])
        child = agent_client.post(reverse("agents:agent-child-token"), {}, format="json").json()
    agent_client.get(reverse(MANIFEST))
    Workspace.objects.filter(pk=workspace.pk).update(permission_mode="no-user-data")
    agent_client.get(reverse("agents:agent-gitsshkey"))
    unknown = tokens.generate("agent").plaintext
    client_for_agent_token(unknown).get(reverse(MANIFEST))

    text = scrape_text()

    secrets = [session_token, issued["token"], child["token"], unknown, METRICS_TOKEN]
    identifiers = [owner.username, workspace.name, agent.name, str(workspace.pk), str(agent.pk), issued["id"]]
    for value in secrets:
        assert not any(value[i : i + 16] in text for i in range(len(value) - 15)), "a token reached /metrics"
    for value in identifiers + [workspace.pk.hex, agent.pk.hex]:
        assert value not in text
    assert "/api/" not in text and "workspaceagents" not in text


# --- Scrape-time collectors ------------------------------------------------------------------------


def collect_a_figure():
    family = GaugeMetricFamily("coderauth_test_figure", "A figure read at scrape time.", labels=["sink"])
    family.add_metric(["syslog"], 7)
    return [family]


def collect_nothing_but_an_error():
    raise DatabaseError("the database went away")


def test_scrape_time_collectors_run_at_each_scrape_and_a_failing_one_is_left_out(scrape, settings, caplog):
    settings.CODERAUTH_METRICS_COLLECTORS = [
        "tests.test_metrics.collect_nothing_but_an_error",
        "tests.test_metrics.collect_a_figure",
    ]

    samples = scrape()

    assert sample_value(samples, "coderauth_test_figure", sink="syslog") == 7
    assert any(name == DURATION_COUNT for name, _ in samples), "the counted series are still there"
    assert "Metrics collector tests.test_metrics.collect_nothing_but_an_error failed: DatabaseError" in caplog.text
    assert "went away" not in caplog.text


# --- The Grafana dashboard and the alert rules use only exported series --------------------------------

DASHBOARD = ROOT / "docs" / "grafana" / "coderauth.json"
ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
# Labels Prometheus adds to every series it scrapes, and the histogram's bucket bound.
PROMETHEUS_LABELS = {"job", "instance", "le"}
SERIES_NAME = re.compile(r"\bcoderauth_[a-z0-9_]+")
MATCHER = re.compile(r'\b([a-z_]+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\([^,]*,\s*([a-z_]+)\)")


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    expressions += [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    assert len(expressions) > 10
    return expressions


def _alert_expressions() -> list[str]:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
    assert {rule["alert"] for rule in rules} >= {
        "CoderauthAgentDenialSpike",
        "CoderauthServerErrors",
        "CoderauthAuditStreamLag",
    }
    return [rule["expr"] for rule in rules]


def _exported(scrape, django_capture_on_commit_callbacks, agent_client, settings) -> Samples:
    """A scrape in which every series has moved at least once, so each shows its labels (a sink configured, so
    the audit stream's scrape-time series are there too; nothing is sent to it)."""
    settings.CODERAUTH_AUDIT_SINKS = ["syslog+udp://127.0.0.1:5514?name=siem"]
    agent_client.get(reverse(MANIFEST))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        metrics.audit_event_recorded("workspace.created")
        metrics.token_issued(kind=metrics.TOKEN_AGENT)
    return scrape()


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_dashboards_and_alerts_use_only_series_labels_and_values_the_app_exports(
    source, scrape, django_capture_on_commit_callbacks, agent_client, settings
):
    """The dashboard and the alert rules cannot drift from the code: every series name, label and label value
    they use is one /metrics exports."""
    expressions = _dashboard_expressions() if source == "dashboard" else _alert_expressions()
    samples = _exported(scrape, django_capture_on_commit_callbacks, agent_client, settings)
    names = {name for name, _ in samples}
    assert {"coderauth_audit_stream_lag_events", "coderauth_audit_stream_delivered_total"} <= names
    labels = {label for _, pairs in samples for label, _ in pairs} | PROMETHEUS_LABELS
    values = {
        "outcome": set(metrics.AGENT_OUTCOMES),
        "status_class": set(metrics.STATUS_CLASSES[1:]),
        "kind": set(metrics.TOKEN_KINDS),
    }

    for expression in expressions:
        assert expression.count("(") == expression.count(")"), expression
        assert expression.count("{") == expression.count("}"), expression
        for name in SERIES_NAME.findall(expression):
            assert name in names, f"{name} is not exported ({source}: {expression})"
        used = {label for label, _ in MATCHER.findall(expression)}
        used |= {label.strip() for group in GROUPING.findall(expression) for label in group.split(",")}
        used |= set(LABEL_VALUES.findall(expression))
        assert used <= labels, f"{used - labels} ({source}: {expression})"
        for label, value in MATCHER.findall(expression):
            if label in values and "$" not in value:
                assert value in values[label], f"{label}={value!r} ({source}: {expression})"


def test_the_documented_prometheus_configuration_parses_and_points_at_metrics():
    """docs/operations.md's scrape and rule configuration, as a reader pastes it."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    scrape_config, rules_config = (yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S))

    (job,) = scrape_config["scrape_configs"]
    assert job["metrics_path"] == reverse("metrics")
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    assert rules_config["rule_files"]
