"""LlamaIndex evaluators as PickLLM quality scores in [0, 1].

PickLLM's reward takes a quality score in [0, 1] (or None: no score). LlamaIndex
evaluators return an ``EvaluationResult`` whose ``score`` is on a scale of the evaluator's
own and whose ``passing`` is a verdict. :func:`evaluation_score` maps one to the other:

* ``CorrectnessEvaluator`` scores 1 to 5: quality ``(score - 1) / 4``;
* ``FaithfulnessEvaluator``, ``RelevancyEvaluator``, ``GuidelineEvaluator`` score 0 or 1:
  quality ``score``;
* ``AnswerRelevancyEvaluator``, ``ContextRelevancyEvaluator`` score 0 to 1 (LlamaIndex
  normalises them): quality ``score``;
* ``PairwiseComparisonEvaluator`` scores 0, 0.5 or 1: quality ``score``;
* ``SemanticSimilarityEvaluator`` scores a cosine, -1 to 1: quality ``max(score, 0)``;
* any other evaluator must score in [0, 1]: quality ``score``.

Before the table applies: ``invalid_result=True`` gives None (the evaluator could not
judge, which is not a bad answer); with ``use_passing=True``, or for a result without a
score, ``passing`` gives 1.0 or 0.0 (None if it is None too); ``score_range=(lo, hi)``
replaces the table's scale: ``(score - lo) / (hi - lo)`` clipped to [0, 1]. A score of an
unknown evaluator outside [0, 1] without ``score_range`` is an error, never silently
clipped.

:class:`LlamaIndexEvaluator` wraps an evaluator in PickLLM's evaluator protocol, a
callable ``(prompt_text, answer_text, **kwargs) -> float | None``, so it can be the
``evaluator`` of :class:`llamaindex_pickllm.PickLLM`. An LLM sees one prompt, not a
separate query and retrieved contexts, so the prompt is passed as ``query`` and (unless
``contexts`` is given) as the only context: the prompt a RAG query engine sends holds the
retrieved context, which is what faithfulness and relevancy judge the answer against.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from llama_index.core.base.response.schema import Response
from llama_index.core.evaluation import (
    BaseEvaluator,
    CorrectnessEvaluator,
    EvaluationResult,
    SemanticSimilarityEvaluator,
)

from pickllm.errors import ConfigError

__all__ = ["LlamaIndexEvaluator", "evaluation_score"]

T = TypeVar("T")

_ROUTING_KEYWORDS = ("model", "decision_id")
"""What PickLLM tells evaluators about a call, which LlamaIndex evaluators do not take."""


def evaluation_score(
    result: EvaluationResult,
    evaluator: BaseEvaluator | None = None,
    *,
    score_range: tuple[float, float] | None = None,
    use_passing: bool = False,
) -> float | None:
    """Map an ``EvaluationResult`` to a quality score in [0, 1] (see the module docstring).

    Args:
        result: what the evaluator returned.
        evaluator: the evaluator that returned it; its class selects the scale.
        score_range: the evaluator's score scale ``(lo, hi)``, overriding the table.
        use_passing: score by the ``passing`` verdict only.

    Returns:
        The quality score, or None when the result carries no usable judgement.

    Raises:
        ConfigError: the score of an unknown evaluator is outside [0, 1] and no
            ``score_range`` says what it means.

    Examples:
        >>> from llama_index.core.evaluation import EvaluationResult
        >>> evaluation_score(EvaluationResult(score=4.0, passing=True),
        ...                  score_range=(1.0, 5.0))
        0.75
        >>> evaluation_score(EvaluationResult(score=None, passing=False))
        0.0
        >>> evaluation_score(EvaluationResult(invalid_result=True)) is None
        True
    """
    if result.invalid_result:
        return None
    score = result.score
    if use_passing or score is None or not math.isfinite(score):
        return None if result.passing is None else float(result.passing)
    return _scaled(float(score), evaluator, score_range)


def _scaled(
    score: float, evaluator: BaseEvaluator | None, score_range: tuple[float, float] | None
) -> float:
    """``score`` on the evaluator's scale, mapped to [0, 1]."""
    if score_range is None and isinstance(evaluator, CorrectnessEvaluator):
        score_range = (1.0, 5.0)
    if score_range is not None:
        lo, hi = score_range
        return min(max((score - lo) / (hi - lo), 0.0), 1.0)
    if isinstance(evaluator, SemanticSimilarityEvaluator):
        return min(max(score, 0.0), 1.0)
    if not 0.0 <= score <= 1.0:
        name = type(evaluator).__name__ if evaluator is not None else "the evaluator"
        msg = (
            f"{name} returned score {score!r}, outside [0, 1]; pass score_range=(lo, hi) "
            "to say what its scale is"
        )
        raise ConfigError(msg)
    return score


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous code.

    LlamaIndex's own sync ``evaluate`` leaves the event loop it creates open; this runs
    ``aevaluate`` on a loop that is closed afterwards (on a helper thread when the calling
    thread already runs a loop, which cannot be re-entered).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pickllm-evaluate") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _check_range(score_range: object) -> tuple[float, float] | None:
    if score_range is None:
        return None
    bounds: list[float] = []
    if isinstance(score_range, tuple) and len(score_range) == 2:
        bounds = [
            float(v)
            for v in score_range
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ]
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        msg = (
            "score_range must be a pair (lo, hi) of finite numbers with lo < hi, "
            f"got {score_range!r}"
        )
        raise ConfigError(msg)
    return bounds[0], bounds[1]


class LlamaIndexEvaluator:
    """A LlamaIndex ``BaseEvaluator`` as a PickLLM evaluator returning [0, 1] or None.

    Args:
        evaluator: any LlamaIndex evaluator (correctness, relevancy, faithfulness, ...).
        score_range: the evaluator's score scale ``(lo, hi)``, overriding the mapping
            table of the module docstring.
        use_passing: score by the ``passing`` verdict only (1.0 or 0.0).
        contexts_from_prompt: pass the prompt as the only context when no ``contexts``
            are given (see the module docstring).

    Examples:
        >>> from llama_index.core.evaluation import BaseEvaluator, EvaluationResult
        >>> class Stars(BaseEvaluator):
        ...     def _get_prompts(self): return {}
        ...     def _update_prompts(self, prompts): pass
        ...     async def aevaluate(self, query=None, response=None, contexts=None, **kw):
        ...         return EvaluationResult(score=float(len(response or "")), passing=True)
        >>> judge = LlamaIndexEvaluator(Stars(), score_range=(0.0, 10.0))
        >>> judge("What is 2 + 2?", "4")
        0.1
    """

    def __init__(
        self,
        evaluator: BaseEvaluator,
        *,
        score_range: tuple[float, float] | None = None,
        use_passing: bool = False,
        contexts_from_prompt: bool = True,
    ) -> None:
        if not isinstance(evaluator, BaseEvaluator):
            msg = f"evaluator must be a LlamaIndex BaseEvaluator, got {evaluator!r}"
            raise TypeError(msg)
        self._range = _check_range(score_range)
        self.evaluator = evaluator
        self.score_range = score_range
        self.use_passing = use_passing
        self.contexts_from_prompt = contexts_from_prompt

    def _kwargs(self, prompt_text: str, answer_text: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        for name in _ROUTING_KEYWORDS:
            kwargs.pop(name, None)
        contexts: Sequence[str] | None = kwargs.pop("contexts", None)
        if contexts is None and self.contexts_from_prompt:
            contexts = [prompt_text]
        query = kwargs.pop("query", None) or prompt_text
        return {"query": query, "response": answer_text, "contexts": contexts, **kwargs}

    def score(self, result: EvaluationResult) -> float | None:
        """The quality score of one ``EvaluationResult`` of this evaluator."""
        return evaluation_score(
            result, self.evaluator, score_range=self._range, use_passing=self.use_passing
        )

    def __call__(self, prompt_text: str, answer_text: str, **kwargs: Any) -> float | None:
        """Score an answer (blocking: runs the evaluator's ``aevaluate`` to completion).

        Args:
            prompt_text: the prompt (used as the query, and as the context by default).
            answer_text: the answer to judge.
            **kwargs: passed to the evaluator (e.g. ``reference=`` for correctness,
                ``contexts=``, ``query=``), except PickLLM's ``model`` and
                ``decision_id``.
        """
        return _run(self.aevaluate(prompt_text, answer_text, **kwargs))

    async def aevaluate(self, prompt_text: str, answer_text: str, **kwargs: Any) -> float | None:
        """Score an answer without blocking the event loop (the evaluator's ``aevaluate``).

        PickLLM's evaluation runner uses it on async paths.
        """
        result = await self.evaluator.aevaluate(**self._kwargs(prompt_text, answer_text, kwargs))
        return self.score(result)

    def score_response(self, query: str, response: Response, **kwargs: Any) -> float | None:
        """Score a query engine's ``Response`` against its source nodes.

        This is the way to score a ``RouterQueryEngine`` answer for a ``PickLLMSelector``:
        the contexts are the retrieved nodes, as the evaluator expects.
        """
        return _run(self.ascore_response(query, response, **kwargs))

    async def ascore_response(self, query: str, response: Response, **kwargs: Any) -> float | None:
        """Async :meth:`score_response`."""
        result = await self.evaluator.aevaluate_response(query=query, response=response, **kwargs)
        return self.score(result)
