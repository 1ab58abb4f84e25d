"""Prices resolved from the genai-prices database: offline, by provider and model name."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage as DbUsage
from genai_prices import calc_price

from pickllm.engine import Request, RoutingSettings
from pickllm.errors import ConfigError
from pickllm.price_db import CatalogPrice, lookup_price
from pickllm.testing import EchoCalls


def _db_pair(model: str, provider: str) -> tuple[float, float]:
    """USD per 1M input and output tokens, as the database's own calculator prices them."""
    million = 1_000_000
    inp = calc_price(DbUsage(input_tokens=million), model, provider_id=provider).total_price
    out = calc_price(DbUsage(output_tokens=million), model, provider_id=provider).total_price
    return float(inp), float(out)


def test_known_models_get_the_database_prices() -> None:
    for model, provider in (("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic")):
        price = lookup_price(model, provider)
        assert price is not None
        assert price.provider == provider
        assert price.pair == pytest.approx(_db_pair(model, provider), rel=1e-12)
        assert price.notes == ()


def test_framework_provider_names_and_unknown_providers() -> None:
    # LangChain's ls_provider spellings are recognised by the database ...
    google = lookup_price("gemini-2.0-flash", "google_genai")
    assert google is not None
    assert google.provider == "google"
    # ... and an unknown provider (a fake's class name) leaves it to the model name.
    fake = lookup_price("gpt-4o-mini", "faketoolchatmodel")
    assert fake is not None
    assert fake.provider == "openai"
    # A known provider is authoritative: its models only.
    assert lookup_price("claude-3-5-haiku-latest", "openai") is None


def test_unknown_and_not_per_token_models_have_no_price() -> None:
    assert lookup_price("my-local-llama") is None
    assert lookup_price("") is None
    assert lookup_price("whisper-1", "openai") is None  # priced per audio hour


def test_tiered_prices_use_the_base_rate() -> None:
    price = lookup_price("gemini-2.5-pro", "google")
    assert price is not None
    short_prompt = calc_price(DbUsage(input_tokens=1_000), "gemini-2.5-pro", provider_id="google")
    assert price.input_price == pytest.approx(float(short_prompt.total_price) * 1_000, rel=1e-12)
    assert "tiered prices: the base rate is used" in price.notes


def test_time_of_day_prices_use_the_highest() -> None:
    price = lookup_price("deepseek-chat", "deepseek")
    assert price is not None
    day = [
        _pair_at("deepseek-chat", "deepseek", datetime(2026, 1, 5, hour, tzinfo=UTC))
        for hour in range(24)
    ]
    assert price.pair == (max(p[0] for p in day), max(p[1] for p in day))
    assert len(set(day)) > 1  # the data really has two prices a day
    assert "time-of-day prices: the highest is used" in price.notes


def _pair_at(model: str, provider: str, when: datetime) -> tuple[float, float]:
    calc = calc_price(
        DbUsage(input_tokens=1_000_000, output_tokens=1_000_000),
        model,
        provider_id=provider,
        genai_request_timestamp=when,
    )
    return float(calc.input_price), float(calc.output_price)


def test_lookup_makes_no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        msg = "network access during a price lookup"
        raise AssertionError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert lookup_price("gpt-4o", "openai") is not None
    assert lookup_price("mistral-small-latest", "mistralai") is not None


def test_settings_price_the_models_they_are_not_given() -> None:
    detected: dict[str, dict[str, Any]] = {
        "mini": {"provider": "openai", "model": "gpt-4o-mini", "tool_calling": True},
        "haiku": {"provider": "anthropic", "model": "claude-3-5-haiku-latest"},
    }
    engine = RoutingSettings(prices={"haiku": (1.0, 2.0)}, policy="cheapest").build_engine(
        ["mini", "haiku"], detected
    )
    by_name = {c.name: c for c in engine.router.candidates}
    assert (by_name["mini"].input_price, by_name["mini"].output_price) == pytest.approx(
        _db_pair("gpt-4o-mini", "openai"), rel=1e-12
    )
    assert by_name["mini"].tool_calling is True
    # the user's price wins over the database's
    assert (by_name["haiku"].input_price, by_name["haiku"].output_price) == (1.0, 2.0)
    answer = engine.run(Request(query="Hi"), EchoCalls())
    assert answer.model == "mini"


def test_settings_look_the_pool_name_up_when_nothing_is_detected() -> None:
    engine = RoutingSettings().build_engine(["gpt-4o"], {})
    (candidate,) = engine.router.candidates
    assert (candidate.input_price, candidate.output_price) == pytest.approx(
        _db_pair("gpt-4o", "openai"), rel=1e-12
    )


def test_settings_name_the_models_the_database_does_not_know() -> None:
    detected = {"local": {"provider": "ollama", "model": "llama3-local"}}
    with pytest.raises(ConfigError) as info:
        RoutingSettings().build_engine(["gpt-4o", "local"], detected)
    text = str(info.value)
    assert text.startswith("no price for model(s) ['local']: prices must give (input, output)")
    assert "'local' (model 'llama3-local', provider 'ollama')" in text
    assert text.endswith("add them to prices (a local model: (0, 0)) or set cost=0")
    # cost=0 needs no price: the unknown model costs nothing, the known one is priced
    engine = RoutingSettings(cost=0).build_engine(["gpt-4o", "local"], detected)
    prices = {c.name: c.input_price for c in engine.router.candidates}
    assert prices["local"] == 0.0
    assert prices["gpt-4o"] > 0.0


def test_catalog_price_is_a_frozen_value() -> None:
    price = CatalogPrice("openai", "gpt-4o-mini", 0.15, 0.6)
    with pytest.raises(AttributeError):
        price.input_price = 1.0  # type: ignore[misc]
