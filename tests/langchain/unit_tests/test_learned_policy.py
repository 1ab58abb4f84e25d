"""ChatPickLLM with a trained SelectLLM router: single-model routes and voted ensembles."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from langchain_pickllm import ChatPickLLM, ReplayChatModel
from pickllm.data import OutcomeTable, load_outcomes
from pickllm.learn import LearnedPolicy, SelectLLM, train


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    return load_outcomes("routerbench_subset")


@pytest.fixture(scope="module")
def selectllm(table: OutcomeTable) -> SelectLLM:
    rows = table.rows(split="train")[::3]
    router = train(table, "selectllm", rows=rows, learner="logistic", ensemble=1, seed=0)
    assert isinstance(router, SelectLLM)
    return router


def _chat(selectllm: SelectLLM, *, subset_size: int) -> ChatPickLLM:
    return ChatPickLLM(
        models=[ReplayChatModel(model=m) for m in selectllm.models],
        policy=LearnedPolicy(scorer=selectllm, subset_size=subset_size, seed=0),
        quality=1.0,
        cost=0.0,
        latency=0.0,
        seed=0,
    )


def test_trained_router_routes_each_call(table: OutcomeTable, selectllm: SelectLLM) -> None:
    llm = _chat(selectllm, subset_size=1)
    prompt = table.prompts[int(table.rows(split="test")[0])]
    answer = llm.invoke(prompt)
    routed = answer.response_metadata["pickllm"]
    assert routed["policy"] == "learned"
    assert routed["plan"] == "single"
    assert routed["model"] in table.models


def test_ensemble_decision_answers_with_the_vote_and_sums_usage(
    table: OutcomeTable, selectllm: SelectLLM
) -> None:
    llm = _chat(selectllm, subset_size=3)
    prompt = next(
        table.prompts[int(i)]
        for i in table.rows(split="test")
        if table.tasks[int(i)] == "winogrande"
    )
    answer = llm.invoke(prompt)
    assert isinstance(answer, AIMessage)
    routed = answer.response_metadata["pickllm"]
    assert routed["plan"] == "ensemble"
    members = [ReplayChatModel(model=m).invoke(prompt) for m in table.models]
    by_name = dict(zip(table.models, members, strict=True))
    assert answer.content in {m.content for m in members}
    served = routed["model"]
    assert answer.content == by_name[served].content
    # Usage is the sum over the members that ran (3 of them), so more than any one member.
    assert answer.usage_metadata is not None
    most = max(m.usage_metadata["total_tokens"] for m in members if m.usage_metadata)
    assert answer.usage_metadata["total_tokens"] > most
    assert llm.stats()[served].calls >= 1
    assert sum(s.calls for s in llm.stats().values()) == 3
