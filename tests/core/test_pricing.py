"""Pricing: token estimates, usage, feedback from usage, and price tables from code or files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm import Candidate, ConfigError, DataError
from pickllm.pricing import PriceTable, Usage, estimate_tokens, make_feedback

GPT = Candidate(name="gpt-4o", input_price=2.5, output_price=10.0)


# ---------------------------------------------------------------- estimate_tokens
@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100), ("x" * 401, 101)],
)
def test_estimate_is_ceil_of_a_quarter_of_the_length(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


@given(st.text(min_size=1))
def test_estimate_is_positive_for_non_empty_text(text: str) -> None:
    assert estimate_tokens(text) >= 1
    assert estimate_tokens(text) == math.ceil(len(text) / 4)


@given(st.text(), st.text())
def test_estimate_is_subadditive_and_monotone(a: str, b: str) -> None:
    both = estimate_tokens(a + b)
    assert max(estimate_tokens(a), estimate_tokens(b)) <= both
    assert both <= estimate_tokens(a) + estimate_tokens(b)


# ---------------------------------------------------------------- Usage
def test_usage_defaults_to_nothing_reported() -> None:
    assert Usage() == Usage(input_tokens=None, output_tokens=None, cost_usd=None)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": -5}, "output_tokens"),
        ({"input_tokens": True}, "input_tokens"),
        ({"output_tokens": 2.5}, "output_tokens"),
        ({"cost_usd": -0.1}, "cost_usd"),
        # NaN and +inf are kept (make_feedback ignores them): the call must not fail.
        ({"cost_usd": float("-inf")}, "cost_usd"),
    ],
)
def test_usage_rejects_bad_values_naming_the_field(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        Usage(**kwargs)  # type: ignore[arg-type]


def test_usage_is_frozen() -> None:
    usage = Usage(1, 2)
    with pytest.raises(AttributeError):
        usage.input_tokens = 3  # type: ignore[misc]


# ---------------------------------------------------------------- make_feedback
def test_reported_usage_is_priced_with_the_candidate_prices() -> None:
    fb = make_feedback(GPT, Usage(input_tokens=2_000, output_tokens=500), latency_s=1.25)
    assert fb.input_tokens == 2_000
    assert fb.output_tokens == 500
    assert fb.cost_usd == pytest.approx((2_000 * 2.5 + 500 * 10.0) / 1e6)
    assert fb.latency_s == 1.25
    assert fb.candidate == "gpt-4o"
    assert not fb.tokens_estimated
    assert fb.error is None
    assert fb.quality is None


def test_reported_cost_wins_over_prices() -> None:
    fb = make_feedback(GPT, Usage(input_tokens=10, output_tokens=10, cost_usd=0.5), latency_s=0)
    assert fb.cost_usd == 0.5


def test_missing_tokens_are_estimated_from_the_texts_and_flagged() -> None:
    fb = make_feedback(GPT, Usage(), latency_s=0.1, prompt_text="p" * 40, completion_text="c" * 81)
    assert (fb.input_tokens, fb.output_tokens) == (10, 21)
    assert fb.tokens_estimated
    assert fb.cost_usd == pytest.approx(GPT.price_of(10, 21))


def test_only_the_missing_side_is_estimated() -> None:
    fb = make_feedback(GPT, Usage(input_tokens=7), latency_s=0.1, completion_text="c" * 8)
    assert (fb.input_tokens, fb.output_tokens, fb.tokens_estimated) == (7, 2, True)
    fb = make_feedback(GPT, Usage(output_tokens=3), latency_s=0.1, prompt_text="p" * 8)
    assert (fb.input_tokens, fb.output_tokens, fb.tokens_estimated) == (2, 3, True)


def test_feedback_carries_quality_error_and_ttft() -> None:
    fb = make_feedback(
        GPT,
        Usage(1, 1),
        latency_s=2.0,
        quality=0.75,
        error=None,
        time_to_first_token_s=0.5,
    )
    assert (fb.quality, fb.time_to_first_token_s) == (0.75, 0.5)
    failed = make_feedback(GPT, Usage(0, 0, cost_usd=0.0), latency_s=0.2, error="TimeoutError")
    assert failed.failed
    assert failed.error == "TimeoutError"
    assert failed.cost_usd == 0.0


# ---------------------------------------------------------------- PriceTable in code
TABLE = PriceTable({"gpt-4o": (2.5, 10.0), "mini": (0.15, 0.6), "free": (0, 0)})


def test_price_table_is_a_read_only_mapping() -> None:
    assert len(TABLE) == 3
    assert list(TABLE) == ["gpt-4o", "mini", "free"]
    assert "mini" in TABLE
    assert "nope" not in TABLE
    assert TABLE["mini"] == (0.15, 0.6)
    assert TABLE.price("free") == (0.0, 0.0)
    assert isinstance(TABLE.price("free")[0], float)
    assert dict(TABLE) == {"gpt-4o": (2.5, 10.0), "mini": (0.15, 0.6), "free": (0.0, 0.0)}
    assert TABLE.get("nope") is None


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"'nope'.*free, gpt-4o, mini"):
        TABLE.price("nope")
    with pytest.raises(KeyError):
        TABLE.candidate("nope")


def test_candidate_from_table_has_prices_and_capabilities() -> None:
    cand = TABLE.candidate("gpt-4o", tool_calling=True, max_context_tokens=128_000)
    assert cand == Candidate(
        name="gpt-4o",
        input_price=2.5,
        output_price=10.0,
        tool_calling=True,
        max_context_tokens=128_000,
    )
    assert [c.name for c in TABLE.candidates()] == ["gpt-4o", "mini", "free"]
    assert TABLE.candidates()[1].price_of(1_000_000, 0) == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("prices", "word"),
    [
        ({"": (1.0, 1.0)}, "non-empty"),
        ({"a": (-1.0, 1.0)}, "'a'"),
        ({"a": (1.0, float("inf"))}, "finite"),
        ({"a": (1.0, float("nan"))}, "finite"),
        ({"a": (1.0,)}, "pair"),
        ({"a": 3.0}, "pair"),
        ({"a": ("1", 2.0)}, "finite"),
        ({"a": (True, 2.0)}, "finite"),
    ],
)
def test_price_table_rejects_bad_prices(prices: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        PriceTable(prices)  # type: ignore[arg-type]


def test_empty_table() -> None:
    assert len(PriceTable()) == 0
    assert repr(PriceTable({"a": (1, 2)})) == "PriceTable({'a': (1.0, 2.0)})"


# ---------------------------------------------------------------- PriceTable from files
def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "prices.csv",
        "\ufeffmodel,input_price_usd_per_mtok,output_price_usd_per_mtok,notes\n"
        "gpt-4o, 2.5 ,10,flagship\n"
        "\n"
        "mini,0.15,0.6,\n",
    )
    table = PriceTable.from_file(path)
    assert dict(table) == {"gpt-4o": (2.5, 10.0), "mini": (0.15, 0.6)}
    assert PriceTable.from_file(str(path)) == table


def test_csv_columns_may_come_in_any_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.CSV",
        "output_price_usd_per_mtok,model,input_price_usd_per_mtok\n4,x,1\n",
    )
    assert PriceTable.from_file(path).price("x") == (1.0, 4.0)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"p\.csv: the file is empty"),
        ("model,input\nx,1\n", r"p\.csv, line 1: missing column\(s\) input_price_usd_per_mtok"),
        (
            "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nx,1,2\ny,abc,2\n",
            r"p\.csv, line 3, column 'input_price_usd_per_mtok': .*got 'abc'",
        ),
        (
            "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nx,1,-2\n",
            r"p\.csv, line 2, column 'output_price_usd_per_mtok': .*>= 0.*got '-2'",
        ),
        (
            "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nx,1,nan\n",
            r"line 2, column 'output_price_usd_per_mtok'",
        ),
        (
            "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nx,1,2\n\nx,3,4\n",
            r"p\.csv, line 4, column 'model': duplicate model 'x'",
        ),
        (
            "model,input_price_usd_per_mtok,output_price_usd_per_mtok\n ,1,2\n",
            r"line 2, column 'model': the model name is empty",
        ),
        (
            "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nx,1\n",
            r"p\.csv, line 2: expected 3 columns, got 2",
        ),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, "p.csv", text)
    with pytest.raises(DataError, match=pattern):
        PriceTable.from_file(path)


def test_json_file(tmp_path: Path) -> None:
    body = {"gpt-4o": {"input": 2.5, "output": 10}, "mini": {"input": 0.15, "output": 0.6}}
    path = _write(tmp_path, "prices.json", json.dumps(body))
    table = PriceTable.from_file(path)
    assert dict(table) == {"gpt-4o": (2.5, 10.0), "mini": (0.15, 0.6)}
    assert table.candidate("mini").output_price == 0.6


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            '{\n  "a": {"input": 1, "output": 2},\n  "b": {"input": 1 "output": 2}\n}',
            r"line 3, column 20: invalid JSON: Expecting ','",
        ),
        ("[1, 2]", r"expected an object .*got a JSON list"),
        ('{"a": [1, 2]}', r"entry 'a': expected an object"),
        ('{"a": {"input": 1}}', r"entry 'a': missing field 'output'"),
        ('{"a": {"input": -1, "output": 2}}', r"entry 'a', field 'input': .*got -1"),
        ('{"a": {"input": "1", "output": 2}}', r"entry 'a', field 'input': .*got '1'"),
        ('{"a": {"input": 1, "output": true}}', r"entry 'a', field 'output'"),
        ('{"": {"input": 1, "output": 2}}', r"a model name is empty"),
        (
            '{"a": {"input": 1, "output": 2}, "a": {"input": 3, "output": 4}}',
            r"duplicate key 'a'",
        ),
    ],
)
def test_json_errors_name_file_and_place(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, "prices.json", text)
    with pytest.raises(DataError, match=pattern) as info:
        PriceTable.from_file(path)
    assert "prices.json" in str(info.value)


def test_unknown_suffix_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "prices.yaml", "a: 1\n")
    with pytest.raises(ConfigError, match=r"\.csv or \.json.*'\.yaml'"):
        PriceTable.from_file(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PriceTable.from_file(tmp_path / "absent.csv")


def test_file_prices_cost_a_call(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.csv",
        "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nm,3,15\n",
    )
    cand = PriceTable.from_file(path).candidate("m")
    fb = make_feedback(cand, Usage(input_tokens=1_000, output_tokens=100), latency_s=0.3)
    assert fb.cost_usd == pytest.approx(0.0045)
