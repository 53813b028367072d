"""System check: a sink URL that cannot be used stops `migrate`, `runserver`, `check` and `stream_audit`, naming
the entry and what is wrong with it, before anything is streamed."""

from __future__ import annotations

from django.core import checks

from audit.streaming.sinks import sink_config_problems


@checks.register(checks.Tags.security)
def check_audit_sinks(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Error(problem, hint='See docs/operations.md, "Streaming the audit log".', id="coderauth.E010")
        for problem in sink_config_problems()
    ]
