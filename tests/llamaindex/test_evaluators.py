"""LlamaIndex evaluators as PickLLM quality scores: the documented mapping, and in use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.evaluation import (
    BaseEvaluator,
    CorrectnessEvaluator,
    EvaluationResult,
    FaithfulnessEvaluator,
    PairwiseComparisonEvaluator,
    RelevancyEvaluator,
    SemanticSimilarityEvaluator,
)
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.prompts.mixin import PromptDictType

from llamaindex_pickllm import LlamaIndexEvaluator, PickLLM, evaluation_score
from pickllm.errors import ConfigError
from pickllm.policies import Fixed
from tests.llamaindex.fakes import UsageLLM


def judge_llm(verdict: str) -> MockFunctionCallingLLM:
    """An LLM judge that always answers ``verdict``."""

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        return ChatMessage(role=MessageRole.ASSISTANT, content=verdict)

    return MockFunctionCallingLLM(response_generator=respond, is_chat_model=True)


class Fixed3(BaseEvaluator):
    """An evaluator of unknown scale that always scores 3."""

    def _get_prompts(self) -> PromptDictType:
        return {}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        pass

    async def aevaluate(
        self,
        query: str | None = None,
        response: str | None = None,
        contexts: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> EvaluationResult:
        return EvaluationResult(query=query, response=response, score=3.0, passing=True)


# ---------------------------------------------------------------------- the mapping
def test_correctness_1_to_5_maps_linearly() -> None:
    ev = CorrectnessEvaluator(llm=judge_llm("4.0\nMostly right."))
    assert evaluation_score(EvaluationResult(score=1.0), ev) == 0.0
    assert evaluation_score(EvaluationResult(score=5.0), ev) == 1.0
    assert LlamaIndexEvaluator(ev)("What is 2 + 2?", "4") == 0.75


def test_verdict_evaluators_score_0_or_1() -> None:
    yes, no = judge_llm("YES"), judge_llm("NO")
    assert (
        LlamaIndexEvaluator(FaithfulnessEvaluator(llm=yes))("Paris is in France.", "Paris") == 1.0
    )
    assert LlamaIndexEvaluator(RelevancyEvaluator(llm=no))("Capital of France?", "Lyon") == 0.0


def test_semantic_similarity_clips_negative_cosine() -> None:
    ev = SemanticSimilarityEvaluator(embed_model=MockEmbedding(embed_dim=4))
    assert evaluation_score(EvaluationResult(score=-0.4, passing=False), ev) == 0.0
    assert evaluation_score(EvaluationResult(score=0.8, passing=True), ev) == 0.8
    assert LlamaIndexEvaluator(ev)("q", "Paris", reference="Paris") == pytest.approx(1.0)


def test_pairwise_scores_are_kept() -> None:
    ev = PairwiseComparisonEvaluator(llm=judge_llm("[[C]]"))
    assert evaluation_score(EvaluationResult(score=0.5, passing=None), ev) == 0.5


def test_passing_invalid_and_missing_results() -> None:
    assert evaluation_score(EvaluationResult(passing=True)) == 1.0
    assert evaluation_score(EvaluationResult(score=0.9, passing=False), use_passing=True) == 0.0
    assert evaluation_score(EvaluationResult(score=1.0, invalid_result=True)) is None
    assert evaluation_score(EvaluationResult()) is None


def test_unknown_scale_needs_a_score_range() -> None:
    with pytest.raises(ConfigError, match=r"Fixed3 returned score 3\.0, outside \[0, 1\]"):
        LlamaIndexEvaluator(Fixed3())("q", "a")
    assert LlamaIndexEvaluator(Fixed3(), score_range=(1.0, 5.0))("q", "a") == 0.5
    assert LlamaIndexEvaluator(Fixed3(), score_range=(0.0, 2.0))("q", "a") == 1.0  # clipped


def test_adapter_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="BaseEvaluator"):
        LlamaIndexEvaluator(lambda q, a: 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="score_range"):
        LlamaIndexEvaluator(Fixed3(), score_range=(5.0, 1.0))


def test_adapter_passes_the_prompt_as_query_and_context() -> None:
    seen: dict[str, Any] = {}

    class Spy(Fixed3):
        async def aevaluate(
            self,
            query: str | None = None,
            response: str | None = None,
            contexts: Sequence[str] | None = None,
            **kwargs: Any,
        ) -> EvaluationResult:
            seen.update(query=query, response=response, contexts=contexts, **kwargs)
            return EvaluationResult(score=1.0)

    LlamaIndexEvaluator(Spy())("the prompt", "the answer", model="small", reference="ref")
    assert seen == {
        "query": "the prompt",
        "response": "the answer",
        "contexts": ["the prompt"],
        "reference": "ref",
    }
    LlamaIndexEvaluator(Spy(), contexts_from_prompt=False)("p", "a")
    assert seen["contexts"] is None


def test_score_response_uses_the_source_nodes() -> None:
    index = VectorStoreIndex.from_documents([Document(text="Paris is the capital of France.")])
    response = index.as_query_engine(llm=UsageLLM(answer="Paris")).query("Capital of France?")
    ev = LlamaIndexEvaluator(FaithfulnessEvaluator(llm=judge_llm("YES")))
    assert ev.score_response("Capital of France?", response) == 1.0  # type: ignore[arg-type]
    score = asyncio.run(ev.ascore_response("Capital of France?", response))  # type: ignore[arg-type]
    assert score == 1.0


# ---------------------------------------------------------------------- in PickLLM
def quality_only(evaluator: Any, **kwargs: Any) -> PickLLM:
    return PickLLM(
        models={
            "small": UsageLLM(answer="4", name="small"),
            "large": UsageLLM(answer="5", name="large"),
        },
        quality=1.0,
        cost=0.0,
        latency=0.0,
        policy=Fixed(model="small"),
        evaluator=evaluator,
        evaluate_in_background=False,
        **kwargs,
    )


def test_llamaindex_evaluator_is_the_reward_quality() -> None:
    llm = quality_only(CorrectnessEvaluator(llm=judge_llm("4.0\nMostly right.")))
    llm.complete("What is 2 + 2?")
    assert llm.stats()["small"].mean_reward == 0.75


async def test_llamaindex_evaluator_on_async_calls() -> None:
    llm = quality_only(CorrectnessEvaluator(llm=judge_llm("2.0\nWrong.")))
    await llm.acomplete("What is 2 + 2?")
    assert llm.stats()["small"].mean_reward == 0.25


def test_evaluator_errors_never_fail_the_call(caplog: pytest.LogCaptureFixture) -> None:
    llm = quality_only(Fixed3())  # out of range without score_range: an evaluator error
    response = llm.complete("q")
    assert response.text == "4"
    runner = llm.evaluation
    assert runner is not None
    assert runner.errors == 1
    assert "ConfigError" in caplog.text
    assert "outside [0, 1]" in str(runner.last_error)
    # the call itself was recorded (cost, latency) and, with no score to come, learned from
    # at once without one
    assert llm.stats()["small"].calls == 1
    assert llm.core_router.pending() == 0


async def test_sync_call_inside_a_running_loop_still_scores() -> None:
    # A sync PickLLM call made from async code: the evaluator cannot re-enter the running
    # loop, so the adapter runs it on a loop of its own.
    llm = quality_only(CorrectnessEvaluator(llm=judge_llm("5.0\nRight.")))
    llm.complete("What is 2 + 2?")
    assert llm.stats()["small"].mean_reward == 1.0
