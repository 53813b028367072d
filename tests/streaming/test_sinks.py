"""CODERAUTH_AUDIT_SINKS: each URL parsed once, with a clear error for one that cannot be used (a system check stops
`check`, `migrate` and the worker); the sink's name never repeats the path or query, which may hold a token."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from audit.streaming.sinks import SinkConfigError, sink_parse, sinks_parse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "scheme", "port", "name", "sink_format"),
    [
        ("syslog+udp://siem.example.com", "syslog+udp", 514, "syslog-udp-siem.example.com-514", "native"),
        ("syslog+tcp://10.0.0.5:1601?format=ocsf", "syslog+tcp", 1601, "syslog-tcp-10.0.0.5-1601", "ocsf"),
        ("syslog+tls://SIEM.example.com", "syslog+tls", 6514, "syslog-tls-siem.example.com-6514", "native"),
        ("syslog+tcp://[::1]:601", "syslog+tcp", 601, "syslog-tcp--1-601", "native"),
        ("https://siem.example.com/?name=lake&format=native", "https", 443, "lake", "native"),
        ("http://127.0.0.1:8080/ingest", "http", 8080, None, "native"),
        ("http://localhost/ingest", "http", 80, None, "native"),
    ],
)
def test_good_urls(url, scheme, port, name, sink_format):
    sink = sink_parse(url)
    assert (sink.scheme, sink.port, sink.format) == (scheme, port, sink_format)
    if name:
        assert sink.name == name
    assert sink.address.startswith(f"{scheme}://")


def test_the_default_name_of_an_https_sink_never_holds_its_path():
    """Security regression: an ingest path often is the receiver's token; the name (shown in the UI and as a metric
    label) holds a digest of it instead."""
    sink = sink_parse("https://collectors.example.com/receiver/v1/http/ZaVnC4dhaV1-path-token")
    other = sink_parse("https://collectors.example.com/receiver/v1/http/another-path-token")
    assert sink.name.startswith("https-collectors.example.com-443-") and "token" not in sink.name
    assert sink.name != other.name
    assert sink.address == "https://collectors.example.com:443"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://siem.example.com", "has the scheme 'ftp': use syslog+udp://, syslog+tcp://, syslog+tls:// or https://"),
        ("siem.example.com:514", "has the scheme 'siem.example.com'"),
        ("syslog+tcp://:514", "names no host"),
        ("syslog+tcp://siem.example.com:99999", "is not a URL (bad host or port)"),
        ("https://user:hunter2@siem.example.com/ingest", "carries credentials: remove them"),
        ("syslog+tcp://siem.example.com:601/path", "has a path; a syslog sink is host and port only"),
        ("https://siem.example.com/ingest#x", "has a #fragment"),
        ("http://siem.example.com/ingest", "is plain http:// to a host other than loopback"),
        ("https://siem.example.com/ingest?token=query-secret", "has 1 unknown query parameter(s)"),
        ("https://siem.example.com/?format=ocsf&format=native", "gives format more than once"),
        ("syslog+udp://siem.example.com?format=cef", "has format='cef': use native or ocsf"),
        ("syslog+udp://siem.example.com?name=Bad Name", "has name='Bad Name': 1 to 64 lower-case letters"),
        ("syslog+tcp://siem.example.com?ca_file=/etc/hostname", "has ca_file, which only syslog+tls:// and https://"),
        ("syslog+tls://siem.example.com?ca_file=/nonexistent/ca.pem", "which is not a readable file"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(SinkConfigError) as raised:
        sink_parse(url, position=3)
    assert message in str(raised.value)
    assert str(raised.value).startswith("CODERAUTH_AUDIT_SINKS entry 3")


def test_errors_never_repeat_credentials_path_or_query():
    """Security regression: a bad URL's error (on the console, in the status page) holds no part of its secrets."""
    urls = [
        "https://user:hunter2@siem.example.com/ingest/path-secret?token=query-secret",
        "http://siem.example.com/ingest/path-secret?format=ocsf",
        "https://siem.example.com/ingest/path-secret?token=query-secret",
    ]
    for url in urls:
        with pytest.raises(SinkConfigError) as raised:
            sink_parse(url)
        for secret in ("hunter2", "user", "path-secret", "query-secret"):
            assert secret not in str(raised.value)


def test_plain_http_beyond_loopback_needs_the_explicit_opt_in():
    assert sink_parse("http://siem.example.com/ingest", allow_http=True).scheme == "http"


def test_two_sinks_with_one_name_are_refused():
    sinks, problems = sinks_parse(["syslog+udp://a.example.com?name=siem", "https://b.example.com/?name=siem"])
    assert [sink.name for sink in sinks] == ["siem"]
    assert problems == [
        "CODERAUTH_AUDIT_SINKS entry 2 (https://b.example.com:443) has the name 'siem' of an earlier entry: give "
        "each sink its own name= (it names the sink's cursor)."
    ]


def test_the_system_check_stops_manage_py_check(settings):
    settings.CODERAUTH_AUDIT_SINKS = ["syslog+udp://siem.example.com", "http://siem.example.com/ingest"]
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "(coderauth.E010) CODERAUTH_AUDIT_SINKS entry 2 (http://siem.example.com) is plain http://" in str(
        raised.value
    )


def test_an_https_sink_needs_a_long_hmac_secret(settings):
    settings.CODERAUTH_AUDIT_SINKS = ["https://siem.example.com/ingest"]
    settings.CODERAUTH_AUDIT_STREAM_HMAC_SECRET = "short"
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "CODERAUTH_AUDIT_STREAM_HMAC_SECRET must be set, at least 32 characters long" in str(raised.value)


def test_no_sinks_and_good_sinks_pass_the_check(settings):
    call_command("check")
    settings.CODERAUTH_AUDIT_SINKS = ["syslog+tls://siem.example.com", "https://siem.example.com/ingest?format=ocsf"]
    call_command("check")
