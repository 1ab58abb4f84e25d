"""Outcome tables: the bundled data sets, the long-CSV loader and its error messages."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, DataError
from pickllm.data import (
    DEFAULT_OUTPUT_TOKENS,
    FALLBACK_OUTPUT_TOKENS,
    CostUnavailableWarning,
    OutcomeTable,
    as_price_table,
    available_datasets,
    bundled_prices,
    load_outcomes,
)
from pickllm.pricing import PriceTable, estimate_tokens

HEADER = "prompt_id,task,split,fold,prompt,model,quality,cost_usd"


def write(tmp_path: Path, text: str, name: str = "outcomes.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


TOY_ROWS = (
    "p1,math,train,0,What is 2+2?,small,1,0.001",
    "p1,math,train,0,What is 2+2?,large,1,0.01",
    "p2,code,test,1,Write a sort,small,0,0.002",
    "p2,code,test,1,Write a sort,large,0.5,0.02",
)


def toy_rows() -> str:
    return "\n".join((HEADER, *TOY_ROWS))


# ---------------------------------------------------------------- bundled data
def test_available_datasets_are_the_bundled_ones() -> None:
    assert available_datasets() == ["llmrouter_9llm", "routerbench_subset"]


def test_routerbench_subset_matches_its_source_figures() -> None:
    t = load_outcomes("routerbench_subset")
    assert (t.n_prompts, t.n_models) == (3150, 11)
    assert not t.cost_estimated
    assert t.cost is not None
    assert t.latency is None
    test = t.rows(split="test")
    assert test.size == 945
    q = t.quality[test]
    assert round(100 * q.max(axis=1).mean(), 2) == 97.57
    gpt4 = t.model_index("gpt-4-1106-preview")
    assert round(100 * q[:, gpt4].mean(), 2) == 87.94
    assert round(float(t.cost[test][:, gpt4].mean()), 6) == 0.005003
    assert sorted(set(t.tasks)) == ["arc-challenge", "mbpp", "winogrande"]
    assert set(np.unique(t.folds).tolist()) == {0, 1, 2, 3, 4}


def test_routerbench_subset_carries_the_response_of_every_call() -> None:
    t = load_outcomes("routerbench_subset")
    assert t.responses is not None
    assert len(t.responses) == t.n_prompts
    assert all(len(r) == t.n_models for r in t.responses)
    assert sum(1 for row in t.responses for text in row if text) > 0.99 * t.n_prompts * 11


def test_bundled_tables_are_cached_and_read_only() -> None:
    a = load_outcomes("routerbench_subset")
    assert load_outcomes("routerbench_subset") is a
    with pytest.raises(ValueError, match="read-only"):
        a.quality[0, 0] = 0.5


def test_llmrouter_cost_is_estimated_from_its_price_table() -> None:
    t = load_outcomes("llmrouter_9llm")
    assert (t.n_prompts, t.n_models) == (5989, 9)
    assert t.cost_estimated
    assert t.cost is not None
    assert set(t.extras) == {"metric", "ground_truth", "choices"}
    i = 0
    j = t.model_index("gemma-2-9b-it")
    price_in, price_out = bundled_prices().price("gemma-2-9b-it")
    out_tokens = DEFAULT_OUTPUT_TOKENS[t.tasks[i]]
    expected = (estimate_tokens(t.prompts[i]) * price_in + out_tokens * price_out) / 1e6
    assert t.input_tokens[i] == estimate_tokens(t.prompts[i])
    assert math.isclose(t.cost[i, j], expected)
    test = t.rows(split="test")
    assert round(100 * t.quality[test].max(axis=1).mean(), 1) == 74.3


def test_bundled_prices_list_the_nine_llmrouter_models() -> None:
    prices = bundled_prices()
    assert len(prices) == 9
    assert prices.price("llama-3.1-nemotron-51b-instruct") == (0.9, 0.9)


# ---------------------------------------------------------------- OutcomeTable
def small_table(**overrides: object) -> OutcomeTable:
    args: dict[str, object] = {
        "name": "toy",
        "prompt_ids": ("a", "b", "c"),
        "prompts": ("x", "y", "z"),
        "tasks": ("t1", "t1", "t2"),
        "splits": ("train", "test", "test"),
        "folds": np.array([0, 1, 1]),
        "models": ("m1", "m2"),
        "quality": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "cost": np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]),
        "cost_estimated": False,
        "input_tokens": np.array([1, 1, 1]),
        "latency": None,
        "responses": None,
        "extras": {"ref": ("1", "2", "3")},
    }
    args.update(overrides)
    return OutcomeTable(**args)  # type: ignore[arg-type]


def test_rows_filter_by_split_and_fold() -> None:
    t = small_table()
    assert t.rows().tolist() == [0, 1, 2]
    assert t.rows(split="test").tolist() == [1, 2]
    assert t.rows(fold=0).tolist() == [0]
    assert t.rows(exclude_fold=0).tolist() == [1, 2]
    assert t.rows(split="test", exclude_fold=1).tolist() == []


def test_rows_reject_unknown_split_and_fold_listing_the_known_ones() -> None:
    t = small_table()
    with pytest.raises(ConfigError, match=r"split 'dev'; available: test, train"):
        t.rows(split="dev")
    with pytest.raises(ConfigError, match=r"fold=7 .*available: 0, 1"):
        t.rows(fold=7)


def test_subset_keeps_rows_in_the_given_order() -> None:
    t = small_table()
    s = t.subset(np.array([2, 0]))
    assert s.prompt_ids == ("c", "a")
    assert s.quality.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert s.extras["ref"] == ("3", "1")
    assert s.models == t.models


def test_table_copies_arrays_and_leaves_the_callers_writable() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = small_table(quality=q)
    q[0, 0] = 0.0
    assert t.quality[0, 0] == 1.0
    assert q.flags.writeable


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quality": np.array([[1.5, 0.0], [0.0, 1.0], [1.0, 1.0]])}, "quality must be in"),
        ({"quality": np.array([[math.nan, 0.0], [0.0, 1.0], [1.0, 1.0]])}, "quality must be"),
        ({"quality": np.ones((3, 3))}, "quality has shape"),
        ({"tasks": ("t1",)}, "tasks has 1 entries"),
        ({"cost": -np.ones((3, 2))}, "cost must be finite and >= 0"),
        ({"models": ("m1", "m1")}, "model names must be unique"),
        ({"extras": {"ref": ("1",)}}, "extra column 'ref'"),
        ({"responses": (("a", "b"),)}, "responses must be 3 rows"),
    ],
)
def test_table_rejects_inconsistent_contents(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        small_table(**overrides)


def test_model_index_names_the_available_models() -> None:
    with pytest.raises(ConfigError, match="available: m1, m2"):
        small_table().model_index("m3")


# ---------------------------------------------------------------- user files
def test_user_csv_loads_in_first_seen_order(tmp_path: Path) -> None:
    t = load_outcomes(write(tmp_path, toy_rows()))
    assert t.prompt_ids == ("p1", "p2")
    assert t.models == ("small", "large")
    assert t.tasks == ("math", "code")
    assert t.splits == ("train", "test")
    assert t.folds.tolist() == [0, 1]
    assert t.quality.tolist() == [[1.0, 1.0], [0.0, 0.5]]
    assert t.cost is not None
    assert t.cost.tolist() == [[0.001, 0.01], [0.002, 0.02]]
    assert not t.cost_estimated
    assert t.input_tokens.tolist() == [3, 3]  # 12 characters / 4
    assert t.responses is None
    assert t.name == str(tmp_path / "outcomes.csv")


def test_gzipped_user_csv_loads(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv.gz"
    path.write_bytes(gzip.compress(toy_rows().encode("utf-8")))
    assert load_outcomes(path).quality.tolist() == [[1.0, 1.0], [0.0, 0.5]]


def test_only_prompt_id_model_and_quality_are_required(tmp_path: Path) -> None:
    text = "prompt_id,model,quality,cost_usd\np,a,1,0.1\np,b,0,0.2\n"
    t = load_outcomes(write(tmp_path, text))
    assert t.tasks == ("all",)
    assert t.splits == ("all",)
    assert t.folds.tolist() == [-1]
    assert t.prompts == ("",)


def test_real_latency_and_responses_and_extras_are_kept(tmp_path: Path) -> None:
    text = (
        "prompt_id,model,quality,cost_usd,latency_s,response,reference,raw_score\n"
        "p,a,1,0.1,0.5,yes,42,1\n"
        "p,b,0,0.2,1.5,no,42,0\n"
    )
    t = load_outcomes(write(tmp_path, text))
    assert t.latency is not None
    assert t.latency.tolist() == [[0.5, 1.5]]
    assert t.responses == (("yes", "no"),)
    assert dict(t.extras) == {"reference": ("42",)}


def test_multiline_prompts_are_parsed(tmp_path: Path) -> None:
    text = 'prompt_id,prompt,model,quality,cost_usd\np,"line one\nline two",a,1,0.1\n'
    assert load_outcomes(write(tmp_path, text)).prompts == ("line one\nline two",)


# ---------------------------------------------------------------- malformed files
@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("prompt_id,model,cost_usd\np,a,1\n", "line 1, column 'quality': missing required column"),
        ("prompt_id,model,quality\np,a,1.5\n", "line 2, column 'quality': expected a number in"),
        ("prompt_id,model,quality\np,a,high\n", "line 2, column 'quality'"),
        ("prompt_id,model,quality\np,a,\n", "line 2, column 'quality'"),
        ("prompt_id,model,quality,cost_usd\np,a,1,-1\n", "line 2, column 'cost_usd'"),
        ("prompt_id,model,quality,fold\np,a,1,x\n", "line 2, column 'fold'"),
        ("prompt_id,model,quality\np,a,1\np,a,0\n", "line 3, column 'model': duplicate row"),
        ("prompt_id,model,quality\np,a,1,9\n", "line 2: expected 3 fields, got 4"),
        ("prompt_id,model,quality\n,a,1\n", "line 2, column 'prompt_id'"),
        (
            "prompt_id,task,model,quality\np,x,a,1\np,y,b,1\n",
            "line 3, column 'task': prompt 'p' has task 'y' here but 'x' on line 2",
        ),
        (
            "prompt_id,model,quality,latency_s\np,a,1,0.5\np,b,1,\n",
            "line 3, column 'latency_s'",
        ),
        ("prompt_id,model,quality\n", "no data rows"),
        ("", "line 1: empty file"),
        ("prompt_id,model,quality,model\np,a,1,a\n", "column 'model': the column appears"),
    ],
)
def test_malformed_files_name_file_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_outcomes(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert where in message


def test_a_record_spanning_lines_is_named_by_its_first_line(tmp_path: Path) -> None:
    text = 'prompt_id,prompt,model,quality\np,"a\nb\nc",a,1\nq,"d\ne",a,2\n'
    with pytest.raises(DataError, match=r"line 5, column 'quality'"):
        load_outcomes(write(tmp_path, text))


def test_incomplete_matrix_lists_the_missing_pairs(tmp_path: Path) -> None:
    text = "prompt_id,model,quality\np1,a,1\np1,b,1\np2,a,0\n"
    with pytest.raises(DataError, match=r"1 \(prompt_id, model\) pairs have no row: \('p2', 'b'\)"):
        load_outcomes(write(tmp_path, text))


def test_unknown_name_lists_the_bundled_data_sets() -> None:
    with pytest.raises(ConfigError, match="available: llmrouter_9llm, routerbench_subset"):
        load_outcomes("no_such_data")


def test_non_utf8_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"prompt_id,model,quality\n\xff\xfe,a,1\n")
    with pytest.raises(DataError, match="UTF-8"):
        load_outcomes(path)


# ---------------------------------------------------------------- missing cost
NO_COST = "prompt_id,task,prompt,model,quality\np1,qa,abcdefgh,alpha,1\np1,qa,abcdefgh,beta,0\n"


def test_unknown_models_without_cost_warn_once_and_have_no_cost(tmp_path: Path) -> None:
    with pytest.warns(CostUnavailableWarning, match="alpha, beta") as record:
        t = load_outcomes(write(tmp_path, NO_COST))
    assert len(record) == 1
    assert t.cost is None
    assert not t.cost_estimated
    assert t.quality.tolist() == [[1.0, 0.0]]


def test_price_mapping_estimates_missing_cost(tmp_path: Path) -> None:
    t = load_outcomes(
        write(tmp_path, NO_COST),
        price_table={
            "alpha": (1.0, 2.0),
            "beta": Candidate(name="beta", input_price=3, output_price=4),
        },
    )
    assert t.cost_estimated
    assert t.cost is not None
    out = FALLBACK_OUTPUT_TOKENS
    expected = [(2 * 1.0 + out * 2.0) / 1e6, (2 * 3.0 + out * 4.0) / 1e6]
    assert t.cost[0].tolist() == pytest.approx(expected)


def test_price_file_estimates_missing_cost(tmp_path: Path) -> None:
    prices = write(
        tmp_path,
        "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nalpha,1,1\nbeta,2,2\n",
        "prices.csv",
    )
    t = load_outcomes(write(tmp_path, NO_COST), price_table=prices)
    assert t.cost_estimated
    assert t.cost is not None
    assert t.cost[0, 1] == pytest.approx(2 * t.cost[0, 0])


def test_models_of_the_bundled_price_table_need_no_price_file(tmp_path: Path) -> None:
    text = "prompt_id,model,quality,output_tokens\np,gemma-2-9b-it,1,10\n"
    t = load_outcomes(write(tmp_path, text))
    assert t.cost is not None
    assert t.cost_estimated
    assert t.cost[0, 0] == pytest.approx((0 * 0.1 + 10 * 0.1) / 1e6)


def test_recorded_cost_is_kept_and_only_missing_cells_are_estimated(tmp_path: Path) -> None:
    text = "prompt_id,model,quality,cost_usd,response\np,alpha,1,0.5,abcdefgh\np,beta,0,,abcdefgh\n"
    t = load_outcomes(write(tmp_path, text), price_table={"beta": 1e6})
    assert t.cost is not None
    assert t.cost_estimated
    # beta: 0 input tokens (empty prompt), 2 output tokens from the 8-character response.
    assert t.cost.tolist() == [[0.5, 2.0]]


def test_bad_price_table_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="price of 'a'"):
        as_price_table({"a": "cheap"})
    with pytest.raises(TypeError, match="price_table must be"):
        as_price_table(3)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="cannot read price file"):
        as_price_table(tmp_path / "missing.csv")
    table = PriceTable({"a": (1.0, 1.0)})
    assert as_price_table(table) is table
