"""ReplayChatModel: recorded answers and costs of real models, offline."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from langchain_pickllm import ReplayChatModel
from pickllm import ConfigError
from pickllm.replay import ReplayStore, UnknownPromptError

PROMPT_ID = "arc-challenge.test.1108"


@pytest.fixture(scope="module")
def store() -> ReplayStore:
    return ReplayStore.load("routerbench_subset")


def test_answers_with_the_recorded_response_and_cost(store: ReplayStore) -> None:
    prompt = store.prompt_text(PROMPT_ID)
    for name in ("gpt-4-1106-preview", "WizardLM/WizardLM-13B-V1.2"):
        model = ReplayChatModel(model=name, store=store)
        rec = store.by_id(PROMPT_ID, name)
        answer = model.invoke([SystemMessage(content="Be brief."), HumanMessage(content=prompt)])
        assert answer.content == rec.response
        meta = answer.response_metadata
        assert (meta["model_name"], meta["cost_usd"], meta["quality"]) == (
            name,
            rec.cost_usd,
            rec.quality,
        )
        assert (meta["prompt_id"], meta["task"], meta["tokens_estimated"]) == (
            PROMPT_ID,
            "arc-challenge",
            True,
        )
        assert answer.usage_metadata == {
            "input_tokens": rec.input_tokens,
            "output_tokens": rec.output_tokens,
            "total_tokens": rec.input_tokens + rec.output_tokens,
        }


async def test_streams_and_async(store: ReplayStore) -> None:
    prompt = store.prompt_text("mbpp.dev.18")
    model = ReplayChatModel(model="meta/llama-2-70b-chat", store=store)
    rec = store.lookup(prompt, "meta/llama-2-70b-chat")
    chunks = list(model.stream(prompt))
    assert len(chunks) > 3
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert isinstance(full, AIMessageChunk)
    assert full.content == rec.response
    assert full.response_metadata["model_name"] == "meta/llama-2-70b-chat"  # once
    assert full.response_metadata["cost_usd"] == rec.cost_usd
    assert (await model.ainvoke(prompt)).content == rec.response
    assert "".join([str(c.content) async for c in model.astream(prompt)]) == rec.response


def test_stop_sequences_cut_the_answer(store: ReplayStore) -> None:
    prompt = store.prompt_text("mbpp.dev.18")
    model = ReplayChatModel(model="meta/llama-2-70b-chat", store=store)
    full = store.lookup(prompt, "meta/llama-2-70b-chat").response
    cut = model.invoke(prompt, stop=["formula"]).content
    assert cut == full[: full.index("formula")]


def test_unknown_prompt_and_model_are_clear_errors(store: ReplayStore) -> None:
    model = ReplayChatModel(model="gpt-4-1106-preview", store=store)
    with pytest.raises(UnknownPromptError, match="not in data set 'routerbench_subset'"):
        model.invoke("What is the capital of France?")
    with pytest.raises(ConfigError, match="model 'gpt-5' is not in data set"):
        ReplayChatModel(model="gpt-5", store=store)
    with pytest.raises(ConfigError, match="unknown data set"):
        ReplayChatModel(model="gpt-4-1106-preview", dataset="no-such-data")


def test_replayed_models_cannot_bind_tools(store: ReplayStore) -> None:
    model = ReplayChatModel(model="gpt-4-1106-preview", store=store)
    with pytest.raises(NotImplementedError):
        model.bind_tools([])
