"""``PickLLMSelector``: a LlamaIndex selector that chooses with a PickLLM policy and learns.

LlamaIndex's ``RouterQueryEngine`` and ``RouterRetriever`` ask a selector which of their
choices (query engines, retrievers, each described by a ``ToolMetadata``) should answer a
query. The stock selectors ask an LLM; this one asks a core :class:`pickllm.Router` whose
candidates are the choices, so any PickLLM policy (learning automaton, epsilon-greedy Q,
UCB1, Thompson sampling, per-context learners, ...) picks, and the scores you give the
answers teach it which choice serves which queries best.

How a selection maps to the core:

* a choice's candidate name is ``ToolMetadata.name``, or ``choice_<index>`` for a choice
  without a name (a plain string description);
* the query text is ``Context.query``; an optional ``key`` function of the
  ``QueryBundle`` gives ``Context.key`` for per-context policies;
* a single-model decision is one ``SingleSelection``; an ensemble decision selects every
  member (``RouterQueryEngine`` then summarises their answers); a cascade selects its
  first member;
* a selection is recorded at once as a call that waits for its score (the core router's
  pending decisions: ``Router.record(..., await_score=True)``), and the policy learns when
  the score arrives through :meth:`PickLLMSelector.feedback` (by decision id, by query text,
  or by the ``SelectorResult``/``Response`` that carries it). The reward is the score
  itself under the default objective (quality only). A selection whose score never comes
  is learned from without one (the objective's ``missing_quality`` rule; 0.5 for quality
  only) when it is pushed out (``max_remembered``) or expires (the router's
  ``pending_ttl_s``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.base_selector import (
    BaseSelector,
    MultiSelection,
    SelectorResult,
    SingleSelection,
)
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.prompts.mixin import PromptDictType
from llama_index.core.schema import QueryBundle
from llama_index.core.tools.types import ToolMetadata

from llamaindex_pickllm.llm import PickLLMRouteEvent
from pickllm.engine import Engine, Request
from pickllm.errors import ConfigError, UnknownDecisionError
from pickllm.objective import Objective
from pickllm.policies.base import Policy
from pickllm.router import CandidateStats, Router
from pickllm.types import Candidate, Decision, Feedback, SeedLike

__all__ = ["PickLLMSelection", "PickLLMSelector", "choice_names"]

_DEFAULT_OBJECTIVE = Objective(quality=1.0, cost=0.0, latency=0.0)

dispatcher = get_dispatcher(__name__)


class PickLLMSelection(SingleSelection):
    """A ``SingleSelection`` that also says which routing decision made it.

    Args:
        index: the chosen choice's position (as in ``SingleSelection``).
        reason: names the policy, the choice and its selection probability.
        decision_id: the decision to score with ``PickLLMSelector.feedback``.
        choice: the chosen choice's candidate name.
        probability: the probability with which the policy chose it.
        policy: the policy's name.

    Examples:
        >>> s = PickLLMSelection(index=1, reason="ucb1 chose 'b'", decision_id="d-1",
        ...                      choice="b", probability=1.0, policy="ucb1")
        >>> s.index, s.decision_id
        (1, 'd-1')
    """

    decision_id: str
    choice: str
    probability: float
    policy: str


def choice_names(choices: Sequence[ToolMetadata]) -> tuple[str, ...]:
    """The candidate name of each choice: its ``name``, or ``choice_<index>`` without one.

    Raises:
        ConfigError: two choices have the same name.

    Examples:
        >>> choice_names([ToolMetadata(description="facts", name="wiki"),
        ...               ToolMetadata(description="news")])
        ('wiki', 'choice_1')
    """
    names = tuple(c.name or f"choice_{i}" for i, c in enumerate(choices))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        msg = f"choices must have unique names for PickLLMSelector, got duplicates {dup}"
        raise ConfigError(msg)
    return names


class PickLLMSelector(BaseSelector):
    """A LlamaIndex selector whose choice is a PickLLM routing decision that learns.

    Use it as the ``selector`` of a ``RouterQueryEngine`` or ``RouterRetriever``; score the
    answers with :meth:`feedback` and the policy moves toward the choice that scores best
    (per context key, with a per-context policy).

    Args:
        policy: a policy object, or a short name for ``pickllm.make_policy``.
        objective: the reward's weights; default: quality only
            (``Objective(quality=1, cost=0, latency=0)``), so the reward is the score.
        seed: seed of a policy given by name.
        key: optional function of the ``QueryBundle`` returning the context key.
        choices: the choices, to build the router before the first query (for ``save`` or
            ``stats``); otherwise it is built from the first query's choices.
        router: a pre-built or loaded core router whose candidates are the choices' names
            (``policy``, ``objective`` and ``seed`` are then ignored).
        max_remembered: how many selections wait for their score (in a router built
            here) and how many query texts are remembered for :meth:`feedback`; the
            oldest are forgotten first.

    Examples:
        >>> from llama_index.core.tools import ToolMetadata
        >>> from pickllm.policies.fixed import Fixed
        >>> sel = PickLLMSelector(policy=Fixed(model="paris"))
        >>> tools = [ToolMetadata(name="paris", description="facts about Paris"),
        ...          ToolMetadata(name="berlin", description="facts about Berlin")]
        >>> result = sel.select(tools, "What is the capital of France?")
        >>> result.ind, result.selections[0].choice
        (0, 'paris')
        >>> result.reason.startswith("fixed chose 'paris' with probability 1.000")
        True
        >>> round(sel.feedback(result, 1.0), 3)
        1.0
    """

    def __init__(
        self,
        *,
        policy: Policy | str = "thompson",
        objective: Objective | None = None,
        seed: SeedLike = None,
        key: Callable[[QueryBundle], str | None] | None = None,
        choices: Sequence[str | ToolMetadata] | None = None,
        router: Router | None = None,
        max_remembered: int = 10_000,
    ) -> None:
        if (
            not isinstance(max_remembered, int)
            or isinstance(max_remembered, bool)
            or max_remembered < 1
        ):
            msg = f"max_remembered must be an int >= 1, got {max_remembered!r}"
            raise ConfigError(msg)
        if key is not None and not callable(key):
            msg = f"key must be a function of the QueryBundle or None, got {key!r}"
            raise TypeError(msg)
        if router is not None and not isinstance(router, Router):
            msg = f"router must be a pickllm.Router or None, got {router!r}"
            raise TypeError(msg)
        if objective is not None and not isinstance(objective, Objective):
            msg = f"objective must be a pickllm.Objective or None, got {objective!r}"
            raise TypeError(msg)
        if router is None and not isinstance(policy, Policy | str):
            msg = f"policy must be a Policy or a policy name, got {policy!r}"
            raise TypeError(msg)
        self.policy = policy
        self.objective = objective
        self.seed = seed
        self.key = key
        self.choices = choices
        self.max_remembered = max_remembered
        self._lock = threading.Lock()
        self._engine: Engine | None = None if router is None else self._new_engine(router)
        if choices is not None:
            names = choice_names(
                [c if isinstance(c, ToolMetadata) else ToolMetadata(description=c) for c in choices]
            )
            if router is None:
                self._engine = self._new_engine(self._build_router(names))
            else:
                self._check_names(router, names)

    # ------------------------------------------------------------------ router
    @property
    def router(self) -> Router:
        """The core router (built at the first selection unless ``choices`` was given).

        Raises:
            ConfigError: no selection was made yet and no choices were given.
        """
        return self.engine.router

    @property
    def engine(self) -> Engine:
        """The core engine: routes, and joins scores by decision id or query text.

        Raises:
            ConfigError: no selection was made yet and no choices were given.
        """
        engine = self._engine
        if engine is None:
            msg = (
                "PickLLMSelector has no router yet: it is built at the first selection, or "
                "pass choices= (or router=) to the constructor"
            )
            raise ConfigError(msg)
        return engine

    def _new_engine(self, router: Router) -> Engine:
        return Engine(router, max_aliases=self.max_remembered)

    def _build_router(self, names: tuple[str, ...]) -> Router:
        objective = self.objective if self.objective is not None else _DEFAULT_OBJECTIVE
        return Router(
            [Candidate(name=n) for n in names],
            self.policy,
            objective,
            seed=self.seed,
            max_pending=self.max_remembered,
        )

    @staticmethod
    def _check_names(router: Router, names: tuple[str, ...]) -> None:
        pool = {c.name for c in router.candidates}
        if pool != set(names):
            msg = (
                f"this PickLLMSelector routes among {sorted(pool)}, but the choices are "
                f"{list(names)}; use one selector per set of choices"
            )
            raise ConfigError(msg)

    def _engine_for(self, names: tuple[str, ...]) -> Engine:
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._new_engine(self._build_router(names))
                engine = self._engine
        self._check_names(engine.router, names)
        return engine

    # ------------------------------------------------------------------ selection
    def _get_prompts(self) -> PromptDictType:
        return {}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        # No prompts: the policy, not an LLM, makes the choice.
        del prompts

    def _select(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> SelectorResult:
        names = choice_names(choices)
        engine = self._engine_for(names)
        key = self.key(query) if self.key is not None else None
        decision = engine.route(Request(query=query.query_str, key=key))
        dispatcher.event(
            PickLLMRouteEvent(
                model=decision.candidate.name,
                decision_id=decision.decision_id,
                policy=decision.policy,
                probability=decision.probability,
                kind=decision.kind,
            )
        )
        members = _selected(decision)
        for member in members:
            # The selection waits in the router for its score (see the module docstring).
            engine.router.record(decision, Feedback(candidate=member.name), await_score=True)
        engine.alias(query.query_str, decision.decision_id)
        index = {n: i for i, n in enumerate(names)}
        note = f" as one of {len(members)} ensemble members" if len(members) > 1 else ""
        selections = []
        for member in members:
            reason = (
                f"{decision.policy} chose {member.name!r} with probability "
                f"{decision.probability:.3f}{note} (decision {decision.decision_id})"
            )
            selections.append(
                PickLLMSelection(
                    index=index[member.name],
                    reason=reason,
                    decision_id=decision.decision_id,
                    choice=member.name,
                    probability=decision.probability if member == decision.candidate else 1.0,
                    policy=decision.policy,
                )
            )
        return SelectorResult(selections=selections)

    async def _aselect(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> SelectorResult:
        # Routing is in-process and takes microseconds: nothing to await.
        return self._select(choices, query)

    # ------------------------------------------------------------------ learning
    def feedback(self, target: str | MultiSelection | Any, score: float) -> float | None:
        """Score a selection; the policy learns from it.

        Args:
            target: a decision id; or the query text (its latest selection); or the
                ``SelectorResult`` of the selection; or a LlamaIndex ``Response`` whose
                ``metadata["selector_result"]`` holds it (what ``RouterQueryEngine``
                returns).
            score: the answer's quality in [0, 1].

        Returns:
            The reward the policy learned from (of the last member for an ensemble).

        Raises:
            ConfigError: the score is not in [0, 1].
            UnknownDecisionError: no selection waiting for a score matches ``target``
                (unknown, already scored, or forgotten).
        """
        return self.engine.feedback(_decision_id_of(target), score)

    # ------------------------------------------------------------------ state
    def stats(self) -> dict[str, CandidateStats]:
        """Per choice: selections, mean reward (see ``Router.stats``)."""
        return self.router.stats()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the learned state (the router's JSON, written atomically)."""
        self.router.save(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        key: Callable[[QueryBundle], str | None] | None = None,
        max_remembered: int = 10_000,
    ) -> PickLLMSelector:
        """A selector that continues from a state saved with :meth:`save`.

        Raises:
            StateError: the file is missing, corrupted or not a router state.
        """
        return cls(router=Router.load(path), key=key, max_remembered=max_remembered)


def _selected(decision: Decision) -> tuple[Candidate, ...]:
    """The choices a decision selects: an ensemble's members, else its candidate."""
    return decision.members if decision.kind == "ensemble" else (decision.candidate,)


def _decision_id_of(target: Any) -> str:
    """The decision id or query text that ``target`` names."""
    if isinstance(target, str):
        return target
    result = target
    metadata = getattr(target, "metadata", None)
    if not isinstance(target, MultiSelection) and isinstance(metadata, dict):
        result = metadata.get("selector_result")
    if isinstance(result, MultiSelection):
        for s in result.selections:
            if isinstance(s, PickLLMSelection):
                return s.decision_id
        msg = "the SelectorResult was not made by a PickLLMSelector (no decision id)"
        raise UnknownDecisionError(msg)
    msg = (
        "feedback target must be a decision id, a query text, a SelectorResult or a "
        f"Response with metadata['selector_result'], got {type(target).__name__}"
    )
    raise TypeError(msg)
