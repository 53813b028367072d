"""The sinks of CODERAUTH_AUDIT_SINKS: each URL parsed and checked once, into a Sink that names its cursor.

    syslog+udp://host:514   syslog+tcp://host:601   syslog+tls://host:6514   https://siem.example.com/ingest

each optionally with `?format=native|ocsf`, `&name=…` (the cursor's name; derived from the URL when left out) and,
for TLS and HTTPS, `&ca_file=/path/ca.pem` (a private CA; certificates are always verified). Plain `http://` only to
a loopback address, or with CODERAUTH_AUDIT_STREAM_ALLOW_HTTP.

Errors name the sink by its position and scheme://host:port only: an ingest URL's path often carries the
receiver's own token, so neither the path nor the query is ever repeated in a message, a log line or a page.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from django.conf import settings

SYSLOG_UDP = "syslog+udp"
SYSLOG_TCP = "syslog+tcp"
SYSLOG_TLS = "syslog+tls"
HTTPS = "https"
HTTP = "http"
DEFAULT_PORTS = {SYSLOG_UDP: 514, SYSLOG_TCP: 601, SYSLOG_TLS: 6514, HTTPS: 443, HTTP: 80}
SCHEMES = tuple(DEFAULT_PORTS)

NATIVE = "native"
OCSF = "ocsf"
FORMATS = (NATIVE, OCSF)

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
QUERY_PARAMETERS = ("format", "name", "ca_file")
# The HMAC key of the HTTPS sinks' signature: long enough that guessing it is hopeless.
HMAC_SECRET_MIN_LENGTH = 32


class SinkConfigError(ValueError):
    """A sink URL that cannot be used, said in words that hold no secret of the URL."""


@dataclass(frozen=True)
class Sink:
    """One configured receiver. `url` is where an HTTP sink POSTs: the configured URL without its query, which holds
    coderauth's own parameters, not the receiver's. It is never displayed: show `address`."""

    name: str
    scheme: str
    host: str
    port: int
    format: str
    ca_file: str
    url: str

    @property
    def address(self) -> str:
        """scheme://host:port: what pages and messages may show of the URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def is_syslog(self) -> bool:
        return self.scheme.startswith("syslog+")

    @property
    def is_http(self) -> bool:
        return self.scheme in (HTTPS, HTTP)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_name(scheme: str, host: str, port: int, path: str) -> str:
    """scheme-host-port, and a digest of the path when there is one (never the path: it may hold a token)."""
    name = f"{scheme.replace('+', '-')}-{host}-{port}"
    if path not in ("", "/"):
        name += "-" + hashlib.sha256(path.encode()).hexdigest()[:8]
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower())[:64]


def sink_parse(url: str, *, position: int = 1, allow_http: bool = False) -> Sink:
    """One sink URL, checked; SinkConfigError says what is wrong with entry `position` of CODERAUTH_AUDIT_SINKS."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise SinkConfigError(f"CODERAUTH_AUDIT_SINKS entry {position} is not a URL (bad host or port).")
    label = f"CODERAUTH_AUDIT_SINKS entry {position} ({scheme}://{host}{f':{port}' if port else ''})"
    if scheme not in SCHEMES:
        raise SinkConfigError(
            f"CODERAUTH_AUDIT_SINKS entry {position} has the scheme {scheme or 'none'!r}: use syslog+udp://, "
            "syslog+tcp://, syslog+tls:// or https://."
        )
    if not host:
        raise SinkConfigError(f"{label} names no host.")
    if parts.username is not None or parts.password is not None:
        raise SinkConfigError(f"{label} carries credentials: remove them (the HTTPS sink signs its body instead).")
    if parts.fragment:
        raise SinkConfigError(f"{label} has a #fragment, which means nothing to a sink.")
    if scheme.startswith("syslog+") and parts.path not in ("", "/"):
        raise SinkConfigError(f"{label} has a path; a syslog sink is host and port only.")
    if scheme == HTTP and not (allow_http or _is_loopback(host)):
        raise SinkConfigError(
            f"{label} is plain http:// to a host other than loopback: use https://, or set "
            "CODERAUTH_AUDIT_STREAM_ALLOW_HTTP=true to send the audit log unencrypted."
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(QUERY_PARAMETERS))
    if unknown:
        raise SinkConfigError(
            f"{label} has {len(unknown)} unknown query parameter(s); the known ones are format, name and ca_file."
        )
    repeated = [key for key, values in query.items() if len(values) > 1]
    if repeated:
        raise SinkConfigError(f"{label} gives {', '.join(sorted(repeated))} more than once.")
    values = {key: items[0] for key, items in query.items()}
    sink_format = values.get("format", NATIVE)
    if sink_format not in FORMATS:
        raise SinkConfigError(f"{label} has format={sink_format!r}: use native or ocsf.")
    port = port or DEFAULT_PORTS[scheme]
    name = values.get("name", "") or _default_name(scheme, host, port, parts.path)
    if not NAME_PATTERN.match(name):
        raise SinkConfigError(
            f"{label} has name={name!r}: 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter "
            "or digit."
        )
    ca_file = values.get("ca_file", "")
    if ca_file:
        if scheme not in (SYSLOG_TLS, HTTPS):
            raise SinkConfigError(f"{label} has ca_file, which only syslog+tls:// and https:// use.")
        if not os.path.isfile(ca_file) or not os.access(ca_file, os.R_OK):
            raise SinkConfigError(f"{label} has ca_file={ca_file!r}, which is not a readable file.")
    target = urlunsplit((scheme, parts.netloc, parts.path, "", ""))
    return Sink(name=name, scheme=scheme, host=host, port=port, format=sink_format, ca_file=ca_file, url=target)


def sinks_parse(urls: list[str], *, allow_http: bool = False) -> tuple[list[Sink], list[str]]:
    """Every sink that parses, and a message for each problem (bad URLs, names used twice)."""
    sinks: list[Sink] = []
    problems: list[str] = []
    for position, url in enumerate(urls, start=1):
        try:
            sink = sink_parse(url, position=position, allow_http=allow_http)
        except SinkConfigError as error:
            problems.append(str(error))
            continue
        if any(other.name == sink.name for other in sinks):
            problems.append(
                f"CODERAUTH_AUDIT_SINKS entry {position} ({sink.address}) has the name {sink.name!r} of an earlier "
                "entry: give each sink its own name= (it names the sink's cursor)."
            )
            continue
        sinks.append(sink)
    return sinks, problems


def sink_config_problems() -> list[str]:
    """What is wrong with the streaming settings; empty when `stream_audit` can run (the system check's question)."""
    sinks, problems = sinks_parse(settings.CODERAUTH_AUDIT_SINKS, allow_http=settings.CODERAUTH_AUDIT_STREAM_ALLOW_HTTP)
    if any(sink.is_http for sink in sinks):
        secret = settings.CODERAUTH_AUDIT_STREAM_HMAC_SECRET
        if len(secret) < HMAC_SECRET_MIN_LENGTH:
            problems.append(
                "CODERAUTH_AUDIT_STREAM_HMAC_SECRET must be set, at least 32 characters long, for the https:// "
                "sinks of CODERAUTH_AUDIT_SINKS: the receiver checks each batch's signature with it."
            )
    return problems


def sinks_configured() -> list[Sink]:
    """The sinks of CODERAUTH_AUDIT_SINKS, or SinkConfigError naming every problem."""
    problems = sink_config_problems()
    if problems:
        raise SinkConfigError(" ".join(problems))
    sinks, _ = sinks_parse(settings.CODERAUTH_AUDIT_SINKS, allow_http=settings.CODERAUTH_AUDIT_STREAM_ALLOW_HTTP)
    return sinks
