"""PickLLM as a drop-in: prices resolved from the database, feedback from anywhere."""

from __future__ import annotations

import pytest
from genai_prices import Usage as DbUsage
from genai_prices import calc_price

from llamaindex_pickllm import PickLLM
from llamaindex_pickllm.translation import identity_of
from pickllm.errors import ConfigError
from tests.llamaindex.fakes import UsageLLM


class OpenAIFake(UsageLLM):
    """A fake whose class lives where LlamaIndex's OpenAI integration does."""


class AnthropicFake(UsageLLM):
    """A fake whose class lives where LlamaIndex's Anthropic integration does."""


# How PickLLM tells a provider: the integration package its LLM class comes from.
OpenAIFake.__module__ = "llama_index.llms.openai.base"
AnthropicFake.__module__ = "llama_index.llms.anthropic.base"


def _pool() -> list[UsageLLM]:
    return [
        OpenAIFake(name="gpt-4o-mini", input_tokens=1200, output_tokens=300),
        AnthropicFake(name="claude-3-5-haiku-latest", input_tokens=1100, output_tokens=250),
    ]


def _db_cost(provider: str, model: str, usage: dict[str, int]) -> float:
    calc = calc_price(
        DbUsage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]),
        model,
        provider_id=provider,
    )
    return float(calc.total_price)


# ====================================================================== prices
def test_identity_comes_from_the_integration_package_and_model_name() -> None:
    assert identity_of(OpenAIFake(name="gpt-4o-mini")) == {
        "provider": "openai",
        "model": "gpt-4o-mini",
    }
    assert identity_of(UsageLLM(name="gpt-4o")) == {"model": "gpt-4o"}


def test_no_prices_routes_and_records_the_database_costs() -> None:
    llm = PickLLM(models=_pool(), policy="random", seed=5)
    providers = {"gpt-4o-mini": "openai", "claude-3-5-haiku-latest": "anthropic"}
    seen = set()
    for _ in range(12):
        response = llm.complete("What is the capital of France?")
        routed = response.additional_kwargs["pickllm"]
        model = routed["model"]
        assert response.raw is not None
        expected = _db_cost(providers[model], model, response.raw["usage"])
        assert expected > 0
        assert routed["cost_usd"] == pytest.approx(expected, rel=1e-9)
        seen.add(model)
    assert seen == set(providers)


def test_user_prices_override_the_database() -> None:
    llm = PickLLM(models=_pool(), prices={"gpt-4o-mini": (50.0, 60.0)}, policy="cheapest")
    response = llm.complete("Hi")
    assert response.additional_kwargs["pickllm"]["model"] == "claude-3-5-haiku-latest"
    by_name = {c.name: c for c in llm.core_router.candidates}
    assert (by_name["gpt-4o-mini"].input_price, by_name["gpt-4o-mini"].output_price) == (
        50.0,
        60.0,
    )


def test_a_model_the_database_does_not_know_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['usage-llm'\]"):
        PickLLM(models=[*_pool(), UsageLLM()])
