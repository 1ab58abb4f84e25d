"""PickLLMSelector: selections, reasons, feedback, learning in RouterQueryEngine/RouterRetriever."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.base_selector import SelectorResult
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.retrievers import RouterRetriever
from llama_index.core.schema import QueryBundle
from llama_index.core.tools import QueryEngineTool, RetrieverTool, ToolMetadata

from llamaindex_pickllm import PickLLMSelection, PickLLMSelector, choice_names
from pickllm.errors import ConfigError, StateError, UnknownDecisionError
from pickllm.evaluation import Contains
from pickllm.policies import Fixed, PerContext, Policy, ThompsonSampling
from pickllm.policies.base import Choice
from pickllm.types import Context, Decision
from tests.llamaindex.fakes import UsageLLM

TOOLS = [
    ToolMetadata(name="paris", description="facts about Paris"),
    ToolMetadata(name="lyon", description="facts about Lyon"),
]


def test_choice_names_use_tool_names_or_index() -> None:
    assert choice_names(
        [ToolMetadata(description="x"), ToolMetadata(description="y", name="b")]
    ) == (
        "choice_0",
        "b",
    )
    with pytest.raises(ConfigError, match=r"duplicates \['a'\]"):
        choice_names([ToolMetadata(description="x", name="a")] * 2)


def test_select_returns_a_selection_naming_policy_and_probability() -> None:
    selector = PickLLMSelector(policy="thompson", seed=0)
    result = selector.select(TOOLS, "Where is the Eiffel tower?")
    selection = result.selections[0]
    assert isinstance(selection, PickLLMSelection)
    assert len(result.selections) == 1
    assert result.ind in (0, 1)
    assert selection.choice == ("paris", "lyon")[result.ind]
    assert selection.policy == "thompson"
    assert result.reason.startswith(f"thompson chose {selection.choice!r} with probability ")
    assert f"{selection.probability:.3f}" in result.reason
    assert selection.decision_id in result.reason


def test_plain_string_choices_and_async_select() -> None:
    selector = PickLLMSelector(policy=Fixed(model="choice_1"))
    result = asyncio.run(selector.aselect(["first engine", "second engine"], "q"))
    assert result.ind == 1
    selection = result.selections[0]
    assert isinstance(selection, PickLLMSelection)
    assert selection.choice == "choice_1"


def test_the_choices_of_a_selector_are_fixed() -> None:
    selector = PickLLMSelector(choices=TOOLS, policy="ucb1")
    assert [c.name for c in selector.router.candidates] == ["paris", "lyon"]
    # the same choices in another order are fine: indices follow the call's order
    result = PickLLMSelector(choices=TOOLS, policy=Fixed(model="paris")).select(
        list(reversed(TOOLS)), "q"
    )
    assert result.ind == 1
    with pytest.raises(ConfigError, match="one selector per set of choices"):
        selector.select([*TOOLS, ToolMetadata(name="nice", description="Nice")], "q")


def test_router_is_built_at_first_selection() -> None:
    selector = PickLLMSelector()
    with pytest.raises(ConfigError, match="no router yet"):
        selector.stats()
    selector.select(TOOLS, "q")
    assert set(selector.stats()) == {"paris", "lyon"}


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="max_remembered"):
        PickLLMSelector(max_remembered=0)
    with pytest.raises(TypeError, match="key must be a function"):
        PickLLMSelector(key="topic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown policy"):
        PickLLMSelector(choices=TOOLS, policy="nope")


# ---------------------------------------------------------------------- feedback
def test_feedback_by_decision_id_query_result_or_response() -> None:
    selector = PickLLMSelector(choices=TOOLS, policy="ucb1")
    r1 = selector.select(TOOLS, "q1")
    assert selector.feedback(r1.selections[0].decision_id, 1.0) == 1.0  # type: ignore[attr-defined]
    selector.select(TOOLS, "q2")
    assert selector.feedback("q2", 0.0) == 0.0
    r3 = selector.select(TOOLS, "q3")
    assert selector.feedback(r3, 0.5) == 0.5

    class FakeResponse:
        def __init__(self, result: SelectorResult) -> None:
            self.metadata = {"selector_result": result}

    assert selector.feedback(FakeResponse(selector.select(TOOLS, "q4")), 0.25) == 0.25
    assert sum(s.calls for s in selector.stats().values()) == 4
    with pytest.raises(UnknownDecisionError, match="is not pending"):
        selector.feedback(r3, 1.0)  # already scored
    with pytest.raises(UnknownDecisionError, match="already scored"):
        selector.feedback("q2", 1.0)  # by query text: the router says why
    with pytest.raises(UnknownDecisionError, match="'never asked'"):
        selector.feedback("never asked", 1.0)
    selector.select(TOOLS, "q5")
    with pytest.raises(ConfigError, match=r"score must be a number in \[0, 1\]"):
        selector.feedback("q5", 1.5)
    with pytest.raises(TypeError, match="feedback target"):
        selector.feedback(42, 1.0)


def test_selections_wait_in_the_router_and_are_forgotten_in_order() -> None:
    selector = PickLLMSelector(choices=TOOLS, policy="ucb1", max_remembered=2)
    first = selector.select(TOOLS, "a")
    selector.select(TOOLS, "b")
    selector.select(TOOLS, "c")
    # each selection is recorded at once and waits in the router's pending decisions
    assert sum(s.calls for s in selector.stats().values()) == 3
    assert selector.router.pending() == 2
    with pytest.raises(UnknownDecisionError):
        selector.feedback(first, 1.0)
    # the selection pushed out was learned from without a score (0.5 for quality only)
    pushed_out = first.selections[0].choice  # type: ignore[attr-defined]
    assert selector.stats()[pushed_out].mean_reward == 0.5
    assert selector.feedback("c", 1.0) == 1.0
    assert selector.router.pending() == 1


class BothEngines(Policy):
    """Test policy: an ensemble of every choice."""

    name = ""  # unnamed: not registered with make_policy

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0, members=range(len(context.candidates)), kind="ensemble")

    def _update(self, decision: Decision, reward: float) -> None:
        pass


def test_ensemble_decision_selects_every_member() -> None:
    selector = PickLLMSelector(policy=BothEngines())
    result = selector.select(TOOLS, "q")
    assert result.inds == [0, 1]
    assert all("ensemble" in reason for reason in result.reasons)
    selector.feedback(result, 1.0)
    assert [s.calls for s in selector.stats().values()] == [1, 1]


# ---------------------------------------------------------------------- learning in pipelines
def engine(answer: str, text: str) -> QueryEngineTool:
    index = VectorStoreIndex.from_documents([Document(text=text)])
    return QueryEngineTool.from_defaults(
        index.as_query_engine(llm=UsageLLM(answer=answer, name=answer)),
        name=answer.lower(),
        description=f"answers with {answer}",
    )


def test_router_query_engine_learns_toward_the_engine_that_scores_better() -> None:
    # Seed 0, Thompson sampling, 200 scored queries: in the last 100 the selector must pick
    # the engine whose answers are right at least 90% of the time (measured: 100/100, after
    # trying the wrong engine once).
    selector = PickLLMSelector(policy="thompson", seed=0)
    query_engine = RouterQueryEngine(
        selector=selector,
        query_engine_tools=[engine("Lyon", "Lyon is in France."), engine("Paris", "Paris.")],
        llm=MockLLM(),
    )
    right = Contains()
    picks: list[str] = []
    for i in range(200):
        question = f"What is the capital of France? ({i})"
        response = query_engine.query(question)
        assert response.metadata is not None
        picks.append(response.metadata["selector_result"].selections[0].choice)
        score = right(question, str(response), reference="Paris")
        assert score is not None
        selector.feedback(response, score)
    assert "lyon" in picks[:100]  # it explored
    assert picks[-100:].count("paris") >= 90
    stats = selector.stats()
    assert stats["paris"].mean_reward == 1.0
    assert stats["lyon"].mean_reward == 0.0


async def test_router_query_engine_async() -> None:
    selector = PickLLMSelector(policy=Fixed(model="paris"))
    query_engine = RouterQueryEngine(
        selector=selector,
        query_engine_tools=[engine("Lyon", "Lyon."), engine("Paris", "Paris.")],
        llm=MockLLM(),
    )
    response = await query_engine.aquery("Capital of France?")
    assert str(response) == "Paris"
    assert selector.feedback(response, 1.0) == 1.0


def retriever(name: str, text: str) -> RetrieverTool:
    index = VectorStoreIndex.from_documents([Document(text=text)])
    return RetrieverTool.from_defaults(
        index.as_retriever(), name=name, description=f"documents about {name}"
    )


def topic(query: QueryBundle) -> str:
    return "france" if "France" in query.query_str else "germany"


def test_router_retriever_learns_per_context_key() -> None:
    # A per-topic learner: France questions should go to the Paris documents and Germany
    # questions to the Berlin ones. Seed 0; in the last 50 of 150 queries per topic at
    # least 90% of the choices are right (measured: all 50).
    selector = PickLLMSelector(
        policy=PerContext(policy=ThompsonSampling(), shared_prior=False, seed=0),
        key=topic,
    )
    router = RouterRetriever(
        selector=selector,
        retriever_tools=[
            retriever("paris", "Paris is the capital of France."),
            retriever("berlin", "Berlin is the capital of Germany."),
        ],
        llm=MockLLM(),
    )
    right: dict[str, list[bool]] = {"france": [], "germany": []}
    for i in range(300):
        country, city = ("France", "Paris") if i % 2 == 0 else ("Germany", "Berlin")
        question = f"What is the capital of {country}? ({i})"
        nodes = router.retrieve(question)
        ok = any(city in n.node.get_content() for n in nodes)
        right[country.lower()].append(ok)
        selector.feedback(question, 1.0 if ok else 0.0)
    assert sum(right["france"][-50:]) >= 45
    assert sum(right["germany"][-50:]) >= 45


# ---------------------------------------------------------------------- state, threads
def test_save_and_load(tmp_path: Path) -> None:
    selector = PickLLMSelector(policy="thompson", seed=1)
    for i in range(30):
        result = selector.select(TOOLS, f"q{i}")
        selector.feedback(result, 1.0 if result.ind == 0 else 0.0)
    path = tmp_path / "selector.json"
    selector.save(path)
    loaded = PickLLMSelector.load(path)
    assert loaded.stats() == selector.stats()
    assert loaded.router.policy.state_dict() == selector.router.policy.state_dict()
    assert loaded.select(TOOLS, "next").ind in (0, 1)
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(StateError):
        PickLLMSelector.load(path)


def test_concurrent_selection_and_feedback_lose_nothing() -> None:
    selector = PickLLMSelector(choices=TOOLS, policy="ucb1")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(200):
                result = selector.select(TOOLS, f"w{worker} q{i}")
                selector.feedback(result, 1.0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(s.calls for s in selector.stats().values()) == 1600


def test_selector_result_type_is_llamaindex_selector_result() -> None:
    result: SelectorResult = PickLLMSelector(policy="random", seed=0).select(TOOLS, "q")
    names: Sequence[str] = [s.choice for s in result.selections]  # type: ignore[attr-defined]
    assert names[0] in {"paris", "lyon"}
