"""Reading GET /metrics in tests: its samples by name and labels, parsed with prometheus_client's own parser."""

from __future__ import annotations

import secrets

from prometheus_client.parser import text_string_to_metric_families

# A token of the length the settings require, made per run.
METRICS_TOKEN = secrets.token_urlsafe(32)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample_value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the series does not exist yet (a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample_name, labels in samples if sample_name == name}
