"""The stream's Prometheus series, read from the cursor table at each scrape (listed in CODERAUTH_METRICS_COLLECTORS),
so they are right whichever node or process answers and however many workers stream."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from audit.streaming.selectors import audit_stream_status


def audit_stream_metrics() -> list[Metric]:
    """coderauth_audit_stream_lag_events and coderauth_audit_stream_delivered_total per sink, labelled with the sink's
    configured name (a fixed set, from the settings). Nothing without sinks."""
    statuses = audit_stream_status()
    if not statuses:
        return []
    lag = GaugeMetricFamily(
        "coderauth_audit_stream_lag_events", "Sealed audit events the sink has yet to receive.", labels=["sink"]
    )
    delivered = CounterMetricFamily(
        "coderauth_audit_stream_delivered", "Audit events the sink acknowledged.", labels=["sink"]
    )
    for status in statuses:
        lag.add_metric([status.name], status.lag)
        delivered.add_metric([status.name], status.delivered)
    return [lag, delivered]
