"""The two wrappers share one engine: same seed, pool and scores, same decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from langchain_pickllm import ChatPickLLM
from langchain_pickllm.testing import FakeToolChatModel
from llamaindex_pickllm import PickLLM
from pickllm.engine import RoutingSettings
from tests.llamaindex.fakes import UsageLLM

NAMES = ("small", "medium", "large")
QUALITY = {"small": 0.2, "medium": 0.9, "large": 0.6}


def scorer(prompt: str, answer: str, *, model: str) -> float:
    """A judge whose scores depend only on who answered."""
    del prompt, answer
    return QUALITY[model]


def ticker() -> Callable[[], float]:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.25
        return now[0]

    return clock


def settings(policy: str, seed: int) -> dict[str, Any]:
    return {
        "policy": policy,
        "seed": seed,
        "quality": 1.0,
        "cost": 0.5,
        "latency": 0.2,
        "prices": {"small": (0.1, 0.2), "medium": (1.0, 2.0), "large": (5.0, 15.0)},
        "evaluator": scorer,
        "clock": ticker(),
    }


def langchain_decisions(policy: str, seed: int, n: int) -> list[str]:
    models = {
        name: FakeToolChatModel(model_name=name, answer=f"answer of {name}") for name in NAMES
    }
    llm = ChatPickLLM(models=models, **settings(policy, seed))
    return [llm.invoke(f"question {i}").response_metadata["pickllm"]["model"] for i in range(n)]


def llamaindex_decisions(policy: str, seed: int, n: int) -> list[str]:
    models = {name: UsageLLM(name=name, answer=f"answer of {name}") for name in NAMES}
    llm = PickLLM(models=models, **settings(policy, seed))
    out = []
    for i in range(n):
        response = llm.chat([ChatMessage(role="user", content=f"question {i}")])
        out.append(response.additional_kwargs["pickllm"]["model"])
    return out


@pytest.mark.parametrize("policy", ["thompson", "epsilon_greedy_q", "learning_automaton"])
def test_same_seed_pool_and_scores_make_the_same_200_decisions(policy: str) -> None:
    lc = langchain_decisions(policy, seed=11, n=200)
    li = llamaindex_decisions(policy, seed=11, n=200)
    assert lc == li
    # Not a trivial sequence: every model was tried.
    assert set(lc) == set(NAMES)


def test_another_seed_gives_another_sequence() -> None:
    assert langchain_decisions("thompson", seed=1, n=60) != langchain_decisions(
        "thompson", seed=2, n=60
    )


def test_both_wrappers_speak_the_shared_vocabulary() -> None:
    shared = RoutingSettings.model_fields
    for wrapper in (ChatPickLLM, PickLLM):
        for name, field in shared.items():
            assert name in wrapper.model_fields, (wrapper.__name__, name)
            assert wrapper.model_fields[name].default == field.default, (wrapper.__name__, name)
        assert "models" in wrapper.model_fields
