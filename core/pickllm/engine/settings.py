"""The constructor vocabulary both framework wrappers share, and how it builds an engine.

``ChatPickLLM`` (LangChain) and ``PickLLM`` (LlamaIndex) both inherit
:class:`RoutingSettings`, so the same names take the same values with the same defaults in
both, and :meth:`RoutingSettings.build_engine` turns them into one :class:`Engine` the same
way: seeds are split once (policy, then retry jitter), candidates are built from prices and
capabilities once, and the same clock serves the router and the engine.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pickllm.cascade.protocol import CascadeStrategy
from pickllm.engine.attempts import RetryConfig
from pickllm.engine.engine import Engine
from pickllm.errors import ConfigError
from pickllm.objective import Objective
from pickllm.ope import DecisionLog
from pickllm.price_db import database_version, lookup_price
from pickllm.pricing import PriceTable
from pickllm.router import Router
from pickllm.state.store import StateStore
from pickllm.types import Candidate

__all__ = ["CAPABILITY_KEYS", "IDENTITY_KEYS", "RoutingSettings", "split_seed"]

_GUARDS = frozenset(
    {
        "breaker_failures",
        "breaker_cooldown_s",
        "budget_usd",
        "budget_per_key_usd",
        "budget_period_s",
        "on_budget",
        "store",
        "decision_log",
    }
)
"""The Router's circuit-breaker, budget, store and decision-log arguments, passed on under the
same names."""

_PENDING = frozenset({"max_pending", "pending_ttl_s"})
"""The Router's bounds on calls waiting for a delayed score, passed on under the same names."""

CAPABILITY_KEYS = frozenset({"tool_calling", "structured_output", "max_context_tokens"})
"""What ``capabilities`` may say of a model."""

IDENTITY_KEYS = ("provider", "model")
"""What a wrapper may detect of a model besides capabilities: its provider and model name,
by which a price missing from ``prices`` is looked up in the price database."""


def split_seed(seed: int | None) -> tuple[np.random.Generator | None, np.random.Generator | None]:
    """The policy's and the retry jitter's generators, spawned from one seed (None: fresh)."""
    if seed is None:
        return None, None
    policy, jitter = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(policy), np.random.default_rng(jitter)


def _strategy_seed(seed: int | None) -> np.random.Generator | None:
    """The cascade strategy's generator: the third child of ``seed`` (None: fresh).

    The first two children are :func:`split_seed`'s, which it leaves unchanged.
    """
    if seed is None:
        return None
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])


class RoutingSettings(BaseModel):
    """What a routed model is told at construction, in both frameworks.

    Args:
        prices: name -> (input, output) USD per 1M tokens, or a ``PriceTable``. A model
            left out is priced from the ``genai-prices`` database (offline, see
            :mod:`pickllm.price_db`) by the provider and model name the wrapper detects;
            every model needs a price one way or the other when the cost weight is not
            zero.
        policy: a ``pickllm`` policy, its short name, or a trained query scorer.
        quality: weight of the answer quality in the reward.
        cost: weight of the cost.
        latency: weight of the latency.
        objective: a full ``Objective`` (overrides the three weights).
        evaluator: scores answers, ``(prompt, answer, **kw) -> score in [0, 1] | None``.
        evaluate_in_background: run the evaluator after returning.
        await_feedback: every call waits for ``feedback()`` before it is learned from;
            ``"auto"`` (the default): calls wait when there is no ``evaluator``. A call
            that waits and gets no score is learned from when it expires (after
            ``pending_ttl_s``, or when ``max_pending`` newer calls wait; checked at each
            routed call), without a quality score: the objective's ``missing_quality``
            rule (default: the quality term is left out of that call's reward).
        seed: seed of the policy (when built here) and of the retry jitter.
        retry: retry and fallback settings.
        timeout: seconds one attempt may take (overrides ``retry.timeout``); None: no limit.
        deadline: seconds a whole call may take (overrides ``retry.deadline``); None: no
            limit.
        router: a pre-built or loaded ``Router``; its candidates must be the models.
        capabilities: per model, overrides of ``tool_calling``, ``structured_output`` and
            ``max_context_tokens``.
        context_key: maps a call's messages to a context key (per-context policies).
        clock: monotonic clock (injected in tests).
        sleep: sync wait between retries (injected in tests).
        async_sleep: async wait between retries (injected in tests).
        max_tracked_runs: how many framework run ids are remembered for ``feedback``.
        max_pending: how many calls may wait for a delayed score (the oldest expires).
        pending_ttl_s: seconds a call may wait for a delayed score before it expires.
        breaker_failures: consecutive failed attempts that open a model's circuit (it is
            skipped for ``breaker_cooldown_s``, then probed once); None turns it off.
        breaker_cooldown_s: seconds an open circuit skips its model.
        budget_usd: USD the router may spend per ``budget_period_s``; None: no limit.
        budget_per_key_usd: USD each context key may spend per period; None: no limit.
        budget_period_s: the budget period in seconds (None: the router's lifetime).
        on_budget: at the limit, ``"raise"`` ``BudgetExceededError`` or route to the
            ``"cheapest"`` model.
        strategy: a cascade strategy for the calls that give a final answer: a name of
            ``pickllm.cascade.factory.STRATEGIES`` (``"threshold_cascade"``,
            ``"optimal_cascade"``, ``"cascade_routing"``), built over the models, or an
            object implementing ``pickllm.cascade.CascadeStrategy``; None (the default)
            routes every call with ``policy``. Tool-binding turns, pinned calls and
            tool-loop turns are routed by ``policy`` either way (see
            :class:`pickllm.engine.Engine`).
        budget_per_call_usd: the average cost per call, in USD, a strategy given by name
            aims at; None: no target (quality first). Not the spend cap ``budget_usd``.
        cascade_estimator: a trained quality estimator (``pickllm train``) for a strategy
            given by name; None: the strategy's priors, learned online.
        store: a shared state store (``pickllm.state.RedisStore``): every process whose
            model is given a store of the same name learns as one; None: this process
            learns alone.
        decision_log: a JSONL file path or a ``pickllm.ope.DecisionLog``: the router logs
            each learned decision (features, key, propensity, reward; no prompt text) for
            off-policy evaluation (``pickllm ope``); None: no log.

    The breaker and budget settings are the ``Router``'s (see there); with a ``router``
    given they must be left out, like ``policy`` and the weights. ``budget_per_call_usd``
    and ``cascade_estimator`` go with a strategy given by name only (an object carries its
    own).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prices: PriceTable | dict[str, tuple[float, float]] | None = None
    policy: Any = "thompson"
    quality: float = 1.0
    cost: float = 0.5
    latency: float = 0.2
    objective: Objective | None = Field(default=None, exclude=True)
    evaluator: Any = Field(default=None, exclude=True)
    evaluate_in_background: bool = False
    await_feedback: bool | Literal["auto"] = "auto"
    seed: int | None = None
    retry: RetryConfig | None = Field(default=None, exclude=True)
    timeout: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    deadline: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    router: Router | None = Field(default=None, exclude=True)
    capabilities: dict[str, dict[str, Any]] = Field(default_factory=dict)
    context_key: Callable[[Any], str | None] | None = Field(default=None, exclude=True)
    clock: Callable[[], float] = Field(default=time.monotonic, exclude=True)
    sleep: Callable[[float], None] = Field(default=time.sleep, exclude=True)
    async_sleep: Callable[[float], Awaitable[None]] = Field(default=asyncio.sleep, exclude=True)
    max_tracked_runs: int = Field(default=10_000, ge=0)
    max_pending: int = 100_000
    pending_ttl_s: float = 3600.0
    breaker_failures: int | None = 5
    breaker_cooldown_s: float = 30.0
    budget_usd: float | None = None
    budget_per_key_usd: float | None = None
    budget_period_s: float | None = 86_400.0
    on_budget: Literal["raise", "cheapest"] = "raise"
    strategy: Any = None
    budget_per_call_usd: float | None = None
    cascade_estimator: Any = Field(default=None, exclude=True)
    store: StateStore | None = Field(default=None, exclude=True)
    decision_log: str | Path | DecisionLog | None = Field(default=None, exclude=True)

    def build_engine(
        self,
        names: Sequence[str],
        detected: Mapping[str, Mapping[str, Any]],
        *,
        evaluator: Callable[..., Any] | None = None,
    ) -> Engine:
        """The engine routing between the models ``names``.

        Args:
            names: the models' names, in the pool's order.
            detected: per model, the capabilities the wrapper read off the framework
                model (``capabilities`` overrides them) and its ``provider`` and ``model``
                name (:data:`IDENTITY_KEYS`), by which a price missing from ``prices`` is
                looked up (without a detected model name, the pool name is looked up).
            evaluator: the evaluator as the core calls it, when the wrapper adapts the
                user's (a framework evaluator); None uses ``self.evaluator``.

        Raises:
            ConfigError: a setting is not allowed (a missing price, an unknown
                capability, a router whose candidates are not the models, an unknown
                strategy or a cascade setting without one).
        """
        if not names:
            msg = "models must name at least one model, got none"
            raise ConfigError(msg)
        self._check_capabilities(names)
        policy_rng, jitter_rng = split_seed(self.seed)
        router = self.router
        if router is None:
            objective = self.objective or Objective(
                quality=self.quality, cost=self.cost, latency=self.latency
            )
            router = Router(
                self._candidates(names, detected, objective),
                self.policy,
                objective,
                seed=policy_rng,
                clock=self.clock,
                **{name: getattr(self, name) for name in _GUARDS | _PENDING},
            )
        else:
            self._check_router(router, names)
        strategy = self._strategy(router.candidates)
        scorer = self.evaluator if evaluator is None else evaluator
        await_feedback = self.await_feedback
        if await_feedback == "auto":
            await_feedback = scorer is None
        return Engine(
            router,
            retry=self._retry(),
            evaluator=scorer,
            evaluate_in_background=self.evaluate_in_background,
            await_feedback=await_feedback,
            seed=jitter_rng,
            clock=self.clock,
            sleep=self.sleep,
            async_sleep=self.async_sleep,
            max_aliases=self.max_tracked_runs,
            strategy=strategy,
        )

    def _strategy(self, candidates: Sequence[Candidate]) -> CascadeStrategy | None:
        """The cascade strategy: ``strategy`` as given, or built by name over ``candidates``."""
        # Imported here: the strategies (and their estimators) load only when used.
        from pickllm.cascade.factory import STRATEGIES, make_strategy

        strategy = self.strategy
        by_name = isinstance(strategy, str)
        budget = self.budget_per_call_usd
        if not by_name:
            for name, value in (
                ("budget_per_call_usd", budget),
                ("cascade_estimator", self.cascade_estimator),
            ):
                if value is not None:
                    msg = (
                        f"{name}={value!r} applies to a cascade strategy given by name "
                        f"(strategy one of {list(STRATEGIES)}), got strategy={strategy!r}; "
                        "a strategy object carries its own"
                    )
                    raise ConfigError(msg)
        if strategy is None or isinstance(strategy, CascadeStrategy):
            return strategy
        if not by_name or strategy not in STRATEGIES:
            msg = (
                f"strategy must be one of {list(STRATEGIES)}, an object implementing "
                f"pickllm.cascade.CascadeStrategy, or None, got {strategy!r}"
            )
            raise ConfigError(msg)
        if budget is not None and (
            isinstance(budget, bool) or not math.isfinite(budget) or budget <= 0.0
        ):
            msg = f"budget_per_call_usd must be a finite number of USD > 0 or None, got {budget!r}"
            raise ConfigError(msg)
        return make_strategy(
            strategy,
            candidates=candidates,
            budget_usd=budget,
            estimator=self.cascade_estimator,
            seed=_strategy_seed(self.seed),
        )

    def _retry(self) -> RetryConfig | None:
        """``retry``, with ``timeout`` and ``deadline`` when they are given."""
        limits = {
            name: value
            for name, value in (("timeout", self.timeout), ("deadline", self.deadline))
            if value is not None
        }
        if not limits:
            return self.retry
        return (self.retry or RetryConfig()).model_copy(update=limits)

    def _check_capabilities(self, names: Sequence[str]) -> None:
        for name, caps in self.capabilities.items():
            if name not in names:
                msg = f"capabilities names {name!r}, which is not among the models {list(names)}"
                raise ConfigError(msg)
            unknown = set(caps) - CAPABILITY_KEYS
            if unknown:
                msg = (
                    f"capabilities[{name!r}] has unknown key(s) {sorted(unknown)}; "
                    f"allowed: {sorted(CAPABILITY_KEYS)}"
                )
                raise ConfigError(msg)

    def _candidates(
        self,
        names: Sequence[str],
        detected: Mapping[str, Mapping[str, Any]],
        objective: Objective,
    ) -> list[Candidate]:
        prices = self.prices
        table = prices if isinstance(prices, PriceTable) else PriceTable(prices or {})
        unknown = sorted(set(table) - set(names))
        if unknown:
            msg = f"prices names {unknown}, which are not among the models {list(names)}"
            raise ConfigError(msg)
        resolved = dict(table)
        for name in names:
            if name not in resolved:
                found = _catalog_price(name, detected.get(name, {}))
                if found is not None:
                    resolved[name] = found
        missing = [name for name in names if name not in resolved]
        if missing and objective.cost > 0:
            looked_up = ", ".join(_identity(name, detected.get(name, {})) for name in missing)
            msg = (
                f"no price for model(s) {missing}: prices must give (input, output) USD per "
                "1M tokens for every model when the cost weight is not zero (got cost="
                f"{objective.cost!r}); the genai-prices database (version "
                f"{database_version()}) has no per-token price for {looked_up}; add them to "
                "prices (a local model: (0, 0)) or set cost=0"
            )
            raise ConfigError(msg)
        candidates = []
        for name in names:
            input_price, output_price = resolved.get(name, (0.0, 0.0))
            found_caps = {k: v for k, v in detected.get(name, {}).items() if k not in IDENTITY_KEYS}
            caps = {**found_caps, **self.capabilities.get(name, {})}
            candidates.append(
                Candidate(name=name, input_price=input_price, output_price=output_price, **caps)
            )
        return candidates

    def _check_router(self, router: Router, names: Sequence[str]) -> None:
        if not isinstance(router, Router):
            msg = f"router must be a pickllm Router or None, got {router!r}"
            raise TypeError(msg)
        pool = {c.name for c in router.candidates}
        if pool != set(names):
            msg = (
                f"the router's candidates {sorted(pool)} are not the models {sorted(names)}; "
                "a router given to a wrapper must route exactly between its models"
            )
            raise ConfigError(msg)
        clash = sorted(
            ({"prices", "policy", "quality", "cost", "latency", "objective"} | _GUARDS | _PENDING)
            & self.model_fields_set
        )
        if clash:
            msg = (
                f"{clash} cannot be given together with router: the router already has its "
                "prices, policy, objective, circuit breaker, budget, pending bounds and "
                "decision log"
            )
            raise ConfigError(msg)


def _model_ref(name: str, found: Mapping[str, Any]) -> tuple[str, str | None]:
    """The model name and provider to look ``name`` up by (its detected identity)."""
    model = found.get("model")
    provider = found.get("provider")
    return (
        model if isinstance(model, str) and model else name,
        provider if isinstance(provider, str) and provider else None,
    )


def _catalog_price(name: str, found: Mapping[str, Any]) -> tuple[float, float] | None:
    model, provider = _model_ref(name, found)
    price = lookup_price(model, provider)
    return None if price is None else price.pair


def _identity(name: str, found: Mapping[str, Any]) -> str:
    model, provider = _model_ref(name, found)
    return f"{name!r} (model {model!r}, provider {provider!r})"
