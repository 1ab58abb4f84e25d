"""pickllm.replay: recorded responses by prompt and model, and derived references."""

from __future__ import annotations

import numpy as np
import pytest

from pickllm import ConfigError, DataError, PickLLMError
from pickllm.data import OutcomeTable
from pickllm.evaluation import MultipleChoice
from pickllm.replay import ReplayRecord, ReplayStore, UnknownPromptError


@pytest.fixture(scope="module")
def store() -> ReplayStore:
    return ReplayStore.load("routerbench_subset")


def toy(*, responses: bool = True, cost: bool = True) -> OutcomeTable:
    prompts = (
        "Which is bigger?\nA) mouse\nB) horse\nAnswer:",
        "Write a function that adds two numbers.",
        "Pick one.\nA) x\nB) y",
    )
    return OutcomeTable(
        name="toy",
        prompt_ids=("q1", "q2", "q3"),
        prompts=prompts,
        tasks=("mc", "code", "mc"),
        splits=("train", "test", "test"),
        folds=np.array([0, 1, 2]),
        models=("small", "large"),
        quality=np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
        cost=np.array([[1e-4, 1e-3], [2e-4, 2e-3], [1e-4, 1e-3]]) if cost else None,
        cost_estimated=False,
        input_tokens=np.array([10, 10, 5]),
        latency=None,
        responses=(("A", "B"), ("def add(a, b): ...", "def add(a, b): return a + b"), ("A", "B"))
        if responses
        else None,
        extras={},
    )


def test_load_is_cached_and_lists_models(store: ReplayStore) -> None:
    assert ReplayStore.load("routerbench_subset") is store
    assert len(store) == 3150
    assert "gpt-4-1106-preview" in store.models
    assert len(store.models) == 11
    assert repr(store) == "ReplayStore('routerbench_subset', prompts=3150, models=11)"


def test_lookup_by_text_and_by_id(store: ReplayStore) -> None:
    prompt = store.prompt_text("arc-challenge.test.1108")
    rec = store.lookup(prompt, "gpt-4-1106-preview")
    assert isinstance(rec, ReplayRecord)
    assert (rec.prompt_id, rec.task, rec.model, rec.response) == (
        "arc-challenge.test.1108",
        "arc-challenge",
        "gpt-4-1106-preview",
        "D",
    )
    assert (rec.quality, rec.cost_usd, rec.cost_estimated) == (1.0, 0.00533, False)
    assert rec.tokens_estimated is True
    assert rec.input_tokens == -(-len(prompt) // 4)
    assert rec.output_tokens == 1
    assert store.lookup(f"\n  {prompt}  \n", "gpt-4-1106-preview") == rec
    assert store.by_id("arc-challenge.test.1108", "gpt-4-1106-preview") == rec
    assert prompt in store
    assert "What is 2 + 2?" not in store


def test_unknown_prompt_is_a_clear_error(store: ReplayStore) -> None:
    with pytest.raises(UnknownPromptError) as info:
        store.lookup("What is the capital of France?", "gpt-4-1106-preview")
    text = str(info.value)
    assert "'What is the capital of France?' is not in data set 'routerbench_subset'" in text
    assert "arc-challenge.test.1108" in text  # a few it does have
    assert "ReplayStore.prompts()" in text
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, PickLLMError)
    with pytest.raises(UnknownPromptError, match="no prompt has id 'nope'"):
        store.prompt_text("nope")


def test_unknown_model_lists_the_models(store: ReplayStore) -> None:
    with pytest.raises(ConfigError, match=r"model 'gpt-5' is not in data set .*'claude-v2'"):
        store.lookup(store.prompt_text("mbpp.dev.18"), "gpt-5")


def test_derived_references_reproduce_the_recorded_correctness(store: ReplayStore) -> None:
    references = store.references()
    assert len(references) == 2703  # 2,723 multiple-choice prompts, 20 with no correct answer
    mc = MultipleChoice(references=references)
    table = store.table
    checked = 0
    for i, prompt in enumerate(table.prompts):
        if prompt not in references:
            continue
        for j, model in enumerate(table.models):
            assert mc(prompt, table.responses[i][j]) == table.quality[i, j], (  # type: ignore[index]
                table.prompt_ids[i],
                model,
            )
            checked += 1
    assert checked == 2703 * 11


def test_code_prompts_have_no_reference(store: ReplayStore) -> None:
    code = store.prompts(task="mbpp")
    assert len(code) == 425  # 427 prompts, two of them share their text with another
    assert all(store.reference(p) is None for p in code)
    assert store.reference(store.prompt_text("winogrande.dev.949")) == "B"


def test_prompts_filters(store: ReplayStore) -> None:
    test_arc = store.prompts(task="arc-challenge", split="test", with_reference=True)
    assert test_arc
    assert all(store.reference(p) is not None for p in test_arc)
    assert all(store.lookup(p, "claude-v1").task == "arc-challenge" for p in test_arc[:20])
    everything = store.prompts()
    assert len(everything) == len(set(everything)) == 3148


def test_blended_price_orders_the_models(store: ReplayStore) -> None:
    gpt4 = store.blended_price("gpt-4-1106-preview")
    gpt35 = store.blended_price("gpt-3.5-turbo-1106")
    mistral = store.blended_price("mistralai/mistral-7b-chat")
    assert gpt4 > gpt35 > mistral > 0
    assert store.mean_quality("gpt-4-1106-preview") == pytest.approx(0.8794, abs=1e-4)


def test_a_small_table_replays_too() -> None:
    small = ReplayStore(toy())
    assert small.lookup("Which is bigger?\nA) mouse\nB) horse\nAnswer:", "large").response == "B"
    assert small.reference("Which is bigger?\nA) mouse\nB) horse\nAnswer:") == "B"
    assert small.reference("Pick one.\nA) x\nB) y") is None  # nobody was right
    assert small.reference("Write a function that adds two numbers.") is None
    assert small.references() == {"Which is bigger?\nA) mouse\nB) horse\nAnswer:": "B"}
    assert small.blended_price("small") > 0


def test_tables_without_responses_or_cost() -> None:
    with pytest.raises(DataError, match="no response texts"):
        ReplayStore(toy(responses=False))
    no_cost = ReplayStore(toy(cost=False))
    assert no_cost.by_id("q1", "small").cost_usd is None
    with pytest.raises(ConfigError, match="has no cost"):
        no_cost.blended_price("small")


def test_unknown_data_set() -> None:
    with pytest.raises(ConfigError, match="unknown data set"):
        ReplayStore.load("no-such-data")
