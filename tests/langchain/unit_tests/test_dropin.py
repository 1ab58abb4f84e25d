"""ChatPickLLM as a drop-in: prices resolved from the database, feedback from anywhere."""

from __future__ import annotations

from typing import Any

import pytest
from genai_prices import Usage as DbUsage
from genai_prices import calc_price
from langchain_core.language_models.base import LangSmithParams

from langchain_pickllm import ChatPickLLM, FakeToolChatModel
from pickllm.errors import ConfigError


class ProviderFake(FakeToolChatModel):
    """A fake that reports a provider to LangSmith, as real integrations do."""

    provider: str = "openai"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider=self.provider, ls_model_name=self.model_name, ls_model_type="chat"
        )


def _pool() -> list[FakeToolChatModel]:
    return [
        ProviderFake(model="gpt-4o-mini", provider="openai", answer="Paris."),
        ProviderFake(model="claude-3-5-haiku-latest", provider="anthropic", answer="Paris!"),
    ]


def _db_cost(provider: str, model: str, usage: dict[str, Any]) -> float:
    calc = calc_price(
        DbUsage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]),
        model,
        provider_id=provider,
    )
    return float(calc.total_price)


# ====================================================================== prices
def test_no_prices_routes_and_records_the_database_costs() -> None:
    llm = ChatPickLLM(models=_pool(), policy="random", seed=3)
    seen = set()
    for _ in range(12):
        answer = llm.invoke("What is the capital of France?")
        routed = answer.response_metadata["pickllm"]
        provider = answer.response_metadata["ls_provider"]
        assert answer.usage_metadata is not None
        expected = _db_cost(provider, routed["model"], dict(answer.usage_metadata))
        assert expected > 0
        assert routed["cost_usd"] == pytest.approx(expected, rel=1e-9)
        assert routed["cost_estimated"] is False
        seen.add(routed["model"])
    assert seen == {"gpt-4o-mini", "claude-3-5-haiku-latest"}
    spend = {name: s.total_cost_usd for name, s in llm.stats().items()}
    assert all(cost > 0 for cost in spend.values())


def test_user_prices_override_the_database() -> None:
    llm = ChatPickLLM(
        models=_pool(), prices={"gpt-4o-mini": (100.0, 200.0)}, policy="cheapest", seed=0
    )
    by_name = {c.name: c for c in llm.engine.router.candidates}
    assert (by_name["gpt-4o-mini"].input_price, by_name["gpt-4o-mini"].output_price) == (
        100.0,
        200.0,
    )
    answer = llm.invoke("Hi")  # the database's haiku is now the cheapest
    assert answer.response_metadata["pickllm"]["model"] == "claude-3-5-haiku-latest"


def test_a_pool_name_is_an_alias_the_model_name_is_looked_up() -> None:
    llm = ChatPickLLM(models={"small": ProviderFake(model="gpt-4o-mini")}, seed=0)
    (candidate,) = llm.engine.router.candidates
    assert candidate.name == "small"
    per_million = calc_price(DbUsage(input_tokens=10**6), "gpt-4o-mini", provider_id="openai")
    assert candidate.input_price == pytest.approx(float(per_million.total_price))


def test_a_model_the_database_does_not_know_is_named() -> None:
    pool = [*_pool(), ProviderFake(model="my-finetune", provider="ollama")]
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['my-finetune'\]") as info:
        ChatPickLLM(models=pool)
    assert "provider 'ollama'" in str(info.value)
    assert "or set cost=0" in str(info.value)
