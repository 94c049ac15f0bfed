"""Reading the server's /metrics the way Prometheus does (prometheus_client's own parser)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def total(text: str, sample: str, **labels: str) -> float:
    """The sum of ``sample`` over every series whose labels include ``labels``."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def scrape(http_url: str) -> str:
    return httpx.get(f"{http_url}/metrics").text
