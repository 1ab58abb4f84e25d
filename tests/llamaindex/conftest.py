"""Fixtures: never the default OpenAI settings; instrumentation handlers removed after use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Settings
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.llms import MockLLM

from tests.llamaindex.fakes import EventCounter


@pytest.fixture(autouse=True)
def offline_settings() -> Iterator[None]:
    """Mocks in the global Settings for the test, and the previous Settings restored."""
    saved = dict(vars(Settings))
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    try:
        yield
    finally:
        vars(Settings).clear()
        vars(Settings).update(saved)


@pytest.fixture
def events() -> Iterator[EventCounter]:
    """An instrumentation handler on the root dispatcher, counting events by name."""
    counter = EventCounter()
    root = get_dispatcher()
    root.add_event_handler(counter)
    try:
        yield counter
    finally:
        root.event_handlers.remove(counter)
