"""Every way a single sign-on can fail ends on a clear page with a fitting status (never a 500), signs nobody in,
and is audited as `user.login_failed` with method oidc and a reason code. Each is provoked for real: a provider
whose ID tokens name another audience or come from a clock an hour slow, a replayed state, a swapped nonce, the
user pressing Cancel, and a provider that is down."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.sso.conftest import point_at
from tests.sso.harness import CLOCK_BEHIND_CLIENT_ID, WRONG_AUDIENCE_CLIENT_ID, SsoBrowser, free_port


def _refused(response, status: int, reason: str, client) -> AuditEvent:
    """The page, not a traceback; nobody signed in; exactly one audit row with this reason."""
    assert response.status_code == status, response.content[:2000]
    assert "registration/sso_error.html" in [template.name for template in response.templates]
    assert b"Traceback" not in response.content
    assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.get(action="user.login_failed")
    assert failed.details["method"] == "oidc" and failed.details["reason"] == reason, failed.details
    assert not AuditEvent.objects.filter(action__in=["user.login", "user.created"]).exists()
    return failed


def _with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    query = {key: value for key, value in query.items() if value is not None}
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
def mallory(sso):
    sso.provider.accounts(mallory={"sub": "sub-mallory", "preferred_username": "mallory", "groups": []})
    return sso


def test_an_id_token_for_another_audience_is_refused(mallory, settings):
    """Security regression: an ID token the provider signed for another application does not sign anyone in."""
    point_at(settings, mallory.provider, client_id=WRONG_AUDIENCE_CLIENT_ID)
    response = mallory.sign_in("mallory")
    _refused(response, 401, "wrong_audience", mallory.client)
    assert b"refused" in response.content


def test_an_expired_id_token_is_refused(mallory, settings):
    """Security regression: the provider's clock is an hour slow, so its ID tokens expired before they arrived."""
    point_at(settings, mallory.provider, client_id=CLOCK_BEHIND_CLIENT_ID)
    response = mallory.sign_in("mallory")
    _refused(response, 401, "expired_id_token", mallory.client)
    assert b"expired" in response.content


def test_a_replayed_state_is_refused_in_the_same_browser_and_in_another(mallory):
    """Security regression: the state is spent by the first answer; the same answer again (from this browser or
    from an attacker's) signs nobody in."""
    callback = mallory.callback_url("mallory")
    assert mallory.client.get(callback).status_code == 302
    logins = AuditEvent.objects.filter(action="user.login").count()

    replay = mallory.client.get(callback)
    assert replay.status_code == 400 and b"already completed" in replay.content
    attacker = Client()
    stolen = attacker.get(callback)
    assert stolen.status_code == 400 and "_auth_user_id" not in attacker.session
    reasons = list(AuditEvent.objects.filter(action="user.login_failed").values_list("details__reason", flat=True))
    assert reasons == ["unknown_state", "unknown_state"]
    assert AuditEvent.objects.filter(action="user.login").count() == logins


def test_a_missing_state_is_refused(mallory):
    response = mallory.client.get("/sso/callback/", {"code": "made-up"})
    _refused(response, 400, "missing_state", mallory.client)


def test_an_answer_without_a_code_is_refused(mallory):
    callback = _with_query(mallory.callback_url("mallory"), code=None)
    _refused(mallory.client.get(callback), 400, "missing_code", mallory.client)


def test_an_id_token_with_another_nonce_is_refused(mallory):
    """Security regression: the nonce sent to the provider is swapped on the way (as an attacker replaying another
    flow's ID token would); the ID token comes back with that nonce, not this session's, and is refused."""
    callback = mallory.callback_url("mallory", tamper=lambda url: _with_query(url, nonce="attacker-chosen-nonce"))
    _refused(mallory.client.get(callback), 401, "bad_nonce", mallory.client)


def test_the_provider_refuses_a_flow_without_pkce(mallory):
    """The provider requires PKCE: without the challenge coderauth sends, it answers with an error."""
    callback = mallory.callback_url("mallory", tamper=lambda url: _with_query(url, code_challenge=None))
    failed = _refused(mallory.client.get(callback), 502, "provider_error", mallory.client)
    assert failed.details["provider_error"] == "invalid_request"


def test_the_user_cancelling_at_the_provider_is_a_clear_page(mallory):
    response = mallory.sign_in("mallory", cancel=True)
    failed = _refused(response, 403, "provider_denied", mallory.client)
    assert failed.details["provider_error"] == "access_denied"
    assert b"did not sign you in" in response.content


def test_a_provider_error_is_shown_by_its_code_only(mallory):
    """The `error` parameter is whatever the URL says: it is cut to a short code, never echoed as given."""
    state = dict(parse_qsl(urlsplit(mallory.start()).query))["state"]
    response = mallory.client.get("/sso/callback/", {"state": state, "error": "server_error<script>x</script>"})
    failed = _refused(response, 502, "provider_error", mallory.client)
    assert failed.details["provider_error"] == "server_errorscriptxscript"
    assert b"<script>x" not in response.content


def test_discovery_unreachable_is_a_503_page(sso, settings):
    settings.CODERAUTH_OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    response = sso.client.get("/sso/login/")
    assert response.status_code == 503, response.content[:2000]
    assert b"cannot be reached" in response.content
    assert "registration/sso_error.html" in [template.name for template in response.templates]


def test_a_discovery_document_naming_another_issuer_is_refused(sso, settings):
    """Discovery must name the configured issuer: the same provider reached as localhost names 127.0.0.1."""
    settings.CODERAUTH_OIDC_ISSUER = sso.provider.issuer.replace("127.0.0.1", "localhost")
    response = sso.client.get("/sso/login/")
    assert response.status_code == 502 and b"another issuer" in response.content


def test_token_endpoint_unreachable_is_a_503_page(own_provider):
    """The provider goes down between the user's sign-in there and coderauth's code exchange."""
    own_provider.accounts(mallory={"sub": "sub-mallory", "preferred_username": "mallory"})
    browser = SsoBrowser(Client(), own_provider)
    callback = browser.callback_url("mallory")
    own_provider.stop()
    response = browser.client.get(callback)
    failed = _refused(response, 503, "provider_unavailable", browser.client)
    assert failed.details["issuer"] == own_provider.issuer


def test_a_provider_restarted_with_a_new_signing_key_still_signs_in(own_provider):
    """The JWKS is cached, and fetched again when an ID token names a key id it does not hold."""
    own_provider.accounts(mallory={"sub": "sub-mallory", "preferred_username": "mallory"})
    assert SsoBrowser(Client(), own_provider).sign_in("mallory").status_code == 302
    old_keys = own_provider.key_ids()
    own_provider.restart()
    assert own_provider.key_ids() != old_keys
    browser = SsoBrowser(Client(), own_provider)
    assert browser.sign_in("mallory").status_code == 302
    assert "_auth_user_id" in browser.client.session


def test_too_many_callbacks_from_one_address_get_429(mallory, settings):
    """Each failed callback writes an audit row: the sign-in budget per address bounds them."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "3/min"
    statuses = [mallory.client.get("/sso/callback/").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    assert AuditEvent.objects.filter(action="user.login_failed").count() == 3


def test_sso_routes_are_404_when_sso_is_off(db, settings):
    settings.CODERAUTH_OIDC_ISSUER = ""
    client = Client()
    assert client.get("/sso/login/").status_code == 404
    assert client.get("/sso/callback/", {"state": "x", "code": "y"}).status_code == 404
    page = client.get("/login/").content.decode()
    assert "Sign in with" not in page
    assert re.search(r'name="password"', page)
