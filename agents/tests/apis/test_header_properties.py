"""Whatever arrives in `Authorization` or `Coder-Session-Token`, a user route and an agent route answer a JSON 401
naming their realm, never a 500 (agents/authentication.py, docs/concepts.md).

Generated values (hypothesis) go through Django's test client: arbitrary bytes passed the way a WSGI server passes
them (decoded as latin-1), any text at all, and token-shaped strings (right prefix and alphabet, a valid checksum,
unknown to the database). A handful of raw byte sequences go over a real socket to the live server, since the test
client cannot send what only an HTTP parser sees (a folded line, a repeated header, a name with an underscore).
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.services.tokens import agent_token_issue
from agents.services.users import user_token_issue
from core import tokens
from tests.helpers.factories import AgentFactory, UserFactory

PROPERTIES = settings(
    max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# (method, route name, realm): a read and a write of each flow.
ROUTES = [
    ("get", "agents:user-me", 'Bearer realm="user"'),
    ("post", "agents:user-token-list", 'Bearer realm="user"'),
    ("get", "agents:agent-manifest", 'Bearer realm="agent"'),
    ("patch", "agents:agent-app-status", 'Bearer realm="agent"'),
]

RAW_BYTES = st.binary(max_size=120).map(lambda raw: raw.decode("latin-1"))  # PEP 3333: bytes as latin-1 text
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # lone surrogates and NUL included
ANY_TEXT = st.text(ANY_CHARACTER, max_size=120)
PREFIXES = st.sampled_from([tokens.AGENT_PREFIX, tokens.USER_PREFIX])
RANDOM_PARTS = st.text(alphabet=tokens.ALPHABET, min_size=tokens.RANDOM_LENGTH, max_size=tokens.RANDOM_LENGTH)
WELL_FORMED_UNKNOWN = st.builds(
    lambda prefix, random_part: f"{prefix}{random_part}{tokens.checksum(random_part)}", PREFIXES, RANDOM_PARTS
)
NEAR_MISSES = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["cda_", "cdu_", "CDA_", "cda", "cdx_", ""]),
    st.text(alphabet=tokens.ALPHABET + "_-. \t\x00é", max_size=50),
)
TAIL = tokens.TOKEN_LENGTH - len(tokens.AGENT_PREFIX)
# A real prefix, then anything, at the token's length or any length: what reaches the format and checksum checks.
AFTER_A_PREFIX = st.one_of(
    st.builds(str.__add__, PREFIXES, ANY_TEXT),
    st.builds(str.__add__, PREFIXES, st.text(ANY_CHARACTER, min_size=TAIL, max_size=TAIL)),
    st.builds(str.__add__, PREFIXES, st.binary(min_size=TAIL, max_size=TAIL).map(lambda raw: raw.decode("latin-1"))),
)
CREDENTIALS = st.one_of(RAW_BYTES, ANY_TEXT, WELL_FORMED_UNKNOWN, NEAR_MISSES, AFTER_A_PREFIX)
AUTHORIZATION = st.one_of(
    CREDENTIALS,
    st.builds(
        lambda scheme, separator, credentials: f"{scheme}{separator}{credentials}",
        st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "Bearer,", ""]),
        st.sampled_from([" ", "  ", "\t", "", " \x00 "]),
        CREDENTIALS,
    ),
)
HEADERS = st.fixed_dictionaries(
    {}, optional={"HTTP_AUTHORIZATION": AUTHORIZATION, "HTTP_CODER_SESSION_TOKEN": CREDENTIALS}
)


def _assert_json_401(status: int, content_type: str | None, www_authenticate: str | None, body: dict, realm: str):
    assert status == 401, (status, body)
    assert content_type == "application/json"
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert www_authenticate == realm


@pytest.mark.django_db
@PROPERTIES
@given(route=st.sampled_from(ROUTES), headers=HEADERS)
def test_arbitrary_credential_headers_get_a_json_401(route, headers):
    """No header value crashes authentication or slips through it: bytes, any text, unknown well-formed tokens."""
    method, name, realm = route
    response = getattr(Client(), method)(reverse(name), **headers)
    _assert_json_401(
        response.status_code, response.get("Content-Type"), response.get("WWW-Authenticate"), response.json(), realm
    )


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_CODER_SESSION_TOKEN"])
def test_the_same_headers_let_a_live_token_through(header):
    """The property above can fail: its harness, given a live token, gets past authentication."""
    owner = UserFactory()
    agent_token = agent_token_issue(actor=owner, agent=AgentFactory(workspace__owner=owner), name="t").plaintext
    user_token = user_token_issue(user=owner, name="t").plaintext
    for route, token in (("agents:user-me", user_token), ("agents:agent-manifest", agent_token)):
        value = f"Bearer {token}" if header == "HTTP_AUTHORIZATION" else token
        assert Client().get(reverse(route), **{header: value}).status_code == 200


# Raw header lines as a client may put them on the wire; http.client checks only for bare CR and LF.
RAW_HEADER_CASES = [
    [(b"Authorization", b"Bearer \xff\xfe\xfd")],
    [(b"Authorization", b"\xc3\x28")],
    [(b"Authorization", b"Bearer cda_" + b"\xe9" * 36)],
    [(b"Coder-Session-Token", b"cda_" + b"\x80" * 36)],
    [(b"Coder-Session-Token", b"\xf0\x9f\x92\xa9")],
    [(b"Authorization", b"Bearer \x00cda_abc")],
    [(b"Authorization", b"Bearer\r\n cda_abc")],  # an obsolete folded line
    [(b"Authorization", b"Bearer a"), (b"Authorization", b"Bearer b")],
    [(b"Coder_Session_Token", b"cda_abc")],  # underscores: dropped by the server, never read as the header
    [(b"Authorization", b"\tBearer\tcda_x\t")],
    [(b"Authorization", b"Bearer " + b"A" * 8000)],
    [(b"Authorization", b"")],
]


def test_raw_header_bytes_over_http_get_a_json_401(live_server):
    """The same over a real socket, for bytes only an HTTP parser sees (invalid UTF-8, folding, repeats)."""
    address = urlsplit(live_server.url)
    for method, name, realm in ROUTES:
        for headers in RAW_HEADER_CASES:
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
            try:
                connection.putrequest(method.upper(), reverse(name))
                for header, value in headers:
                    connection.putheader(header, value)
                connection.putheader("Content-Length", "0")
                connection.endheaders()
                response = connection.getresponse()
                body = json.loads(response.read() or b"{}")
                _assert_json_401(
                    response.status,
                    response.getheader("Content-Type"),
                    response.getheader("WWW-Authenticate"),
                    body,
                    realm,
                )
            finally:
                connection.close()
