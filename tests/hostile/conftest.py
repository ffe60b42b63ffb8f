"""One hub for the corpus and the cross-citizen checks (a fresh database, the demo citizens)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import hub_database
from tests.hostile.corpus import CONFIG, Context
from tests.hostile.harness import ThreadedHub, start_hub


@pytest.fixture(scope="session")
def corpus_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedHub]:
    with hub_database() as database:
        started = start_hub(tmp_path_factory.mktemp("corpus"), {**CONFIG, **database})
        try:
            yield started
        finally:
            started.stop()


@pytest.fixture(scope="session")
def ctx(corpus_hub: ThreadedHub) -> Context:
    return Context(corpus_hub)
