"""Scrape a running hub's /metrics over HTTP and read samples the way Prometheus would."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Hub


@dataclass(frozen=True)
class Scrape:
    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called name whose labels include these (0 if none)."""
        return sum(
            v
            for n, have, v in self.samples
            if n == name and all(have.get(k) == want for k, want in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {have[label] for n, have, _ in self.samples if n == name and label in have}


async def scrape(hub: Hub) -> Scrape:
    async with hub.session.get(f"{hub.url}/metrics") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/plain"
        text = await resp.text()
    return Scrape(
        [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    )
