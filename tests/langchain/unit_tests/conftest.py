"""Shared fixtures for the LangChain tests: a fake clock and a ChatPickLLM factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from langchain_pickllm import ChatPickLLM, FakeToolChatModel

PRICES = {"small": (0.1, 0.4), "large": (2.5, 10.0)}


class FakeClock:
    """A monotonic clock that advances by ``step`` seconds each time it is read."""

    def __init__(self, step: float = 0.01) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fakes(**overrides: Any) -> dict[str, FakeToolChatModel]:
    """Two tool-calling fakes named small and large (fresh each time)."""
    models = {
        "small": FakeToolChatModel(model="small-fake", answer="Paris."),
        "large": FakeToolChatModel(model="large-fake", answer="Paris, France."),
    }
    models.update(overrides)
    return models


@pytest.fixture
def make_llm(clock: FakeClock) -> Callable[..., ChatPickLLM]:
    def build(**kwargs: Any) -> ChatPickLLM:
        params: dict[str, Any] = {
            "models": fakes(),
            "prices": PRICES,
            "policy": "epsilon_greedy_q",
            "seed": 0,
            "clock": clock,
            "sleep": lambda _s: None,
        }
        params.update(kwargs)
        return ChatPickLLM(**params)

    return build
