"""Live cascade strategies: one session per call, learned priors and online budget control.

:class:`LiveCascade` implements :class:`~pickllm.cascade.protocol.CascadeStrategy` for the
three strategies (``threshold_cascade``, ``optimal_cascade``, ``cascade_routing``). It
works without trained artefacts:

* ex-ante quality per model: a Beta posterior (prior Beta(1, 1)) updated with every
  post-hoc estimate seen (fractional successes), giving ``q_hat``; the spread of a
  model's post-hoc estimates across calls (running variance, prior 1/12: uniform) is the
  diagonal of Sigma;
* post-hoc quality of an answer: the user's evaluator score when given; else, with a
  trained estimator, its post-hoc model; else the agreement of the answer with the
  answers already seen, ``(q_hat + agreeing) / (1 + others)`` (the prior when alone);
* ex-ante cost: ``prompt_tokens x input price + expected output tokens x output price``
  with a running mean of each model's output tokens (inferred from the step's actual
  cost; 256 until a model has answered); post-hoc cost: the step's actual cost.

Budget control: the strategies keep one multiplier ``lam`` (the cost price; for the
threshold cascade the threshold is ``1 - lam``) and move it after every call by dual
ascent on the spend: ``log lam += rate * (cost / budget - 1)`` (the threshold: ``lam +=
rate * (cost / budget - 1)``, kept in [0, 1]), so the mean cost per call settles at the
budget on a stationary stream. Without a budget ``lam`` is 0: quality first (the depth
cap still bounds a call).

Quality draws are clipped to [0, 1] (a quality cannot exceed 1), so once an answer is
known to be right no other model adds anything.

Examples:
    >>> from pickllm.types import Candidate
    >>> pool = [Candidate(name="small", input_price=0.1, output_price=0.1),
    ...         Candidate(name="large", input_price=10.0, output_price=10.0)]
    >>> strategy = LiveCascade("cascade_routing", candidates=pool, budget_usd=0.002, seed=0)
    >>> session = strategy.start("2+2?", pool, prompt_tokens=10)
    >>> session.next_model()
    'small'
    >>> round(session.observe("small", "4", cost_usd=3e-5, latency_s=0.1, score=1.0), 2)
    1.0
    >>> session.next_model() is None, session.final()
    (True, 'small')
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from pickllm.cascade.answers import Answer, agree, read_answer
from pickllm.cascade.protocol import CascadeSession, CascadeStep
from pickllm.cascade.rules import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_SAMPLES,
    joint_samples,
    normal_samples,
    search_supermodel,
)
from pickllm.errors import ConfigError
from pickllm.types import Candidate, SeedLike

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "LiveCascade",
    "LiveEstimator",
    "LiveSession",
]

DEFAULT_OUTPUT_TOKENS = 256.0
"""Output tokens assumed for a model before it has answered once."""

_KINDS = ("threshold_cascade", "optimal_cascade", "cascade_routing")
_RUN_VARIANCE = 1e-6
_LAM_BOUNDS = (1e-9, 1e12)


@runtime_checkable
class LiveEstimator(Protocol):
    """A trained estimator a live strategy can use (see :mod:`pickllm.cascade.trained`)."""

    def ex_ante(
        self, query: str, names: Sequence[str], prompt_tokens: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(q_hat, sigma, c_hat or None)`` for the models called ``names``."""
        ...

    def post_hoc(
        self,
        model: int,
        answers: Sequence[Answer | None],
        run: Sequence[int],
        ante: np.ndarray,
    ) -> float:
        """The post-hoc estimate of ``model``'s answer given the answers of ``run``."""
        ...


@dataclass(slots=True)
class _ModelStats:
    alpha: float = 1.0
    beta: float = 1.0
    n: int = 0
    mean: float = 0.5
    m2: float = 0.0  # Welford sum of squares of the post-hoc estimates
    out_tokens: float = DEFAULT_OUTPUT_TOKENS
    n_cost: int = 0

    @property
    def q_hat(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def spread(self) -> float:
        prior, weight = 1.0 / 12.0, 2.0
        sample = self.m2 / self.n if self.n else prior
        return (weight * prior + self.n * sample) / (weight + self.n)

    def learn_quality(self, value: float) -> None:
        self.alpha += value
        self.beta += 1.0 - value
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def learn_tokens(self, tokens: float) -> None:
        self.n_cost += 1
        if self.n_cost == 1:
            self.out_tokens = tokens
        else:
            self.out_tokens += (tokens - self.out_tokens) / self.n_cost


class LiveSession:
    """The state of one cascaded call (see :class:`~pickllm.cascade.protocol.CascadeSession`)."""

    def __init__(
        self,
        strategy: LiveCascade,
        query: str,
        candidates: Sequence[Candidate],
        prompt_tokens: int,
        u: float,
    ) -> None:
        self._strategy = strategy
        self.strategy = strategy
        self.names = tuple(c.name for c in candidates)
        self._index = {name: j for j, name in enumerate(self.names)}
        self.prompt_tokens = prompt_tokens
        q, sigma, c = strategy.ex_ante(query, candidates, prompt_tokens)
        self.ante = q
        self._sigma = sigma
        self._c_ante = c
        self._u = u
        self._run: list[int] = []
        self._failed: set[int] = set()
        self._scored: set[int] = set()
        self.answers: list[Answer | None] = [None] * len(self.names)
        self._post = np.full(len(self.names), np.nan)
        self._cost = np.zeros(len(self.names))
        self._steps: list[CascadeStep] = []
        self._stopped = False
        self.lam = strategy.current_lam

    # -- protocol ------------------------------------------------------------
    @property
    def steps(self) -> tuple[CascadeStep, ...]:
        """The steps run so far, in order, each answer with its latest post-hoc estimate.

        A later answer revises the estimates of those seen before it (agreement), so a
        step's ``quality`` is the estimate :meth:`final` compares, not the one
        :meth:`observe` returned at the time.
        """
        return tuple(
            s if s.quality is None else replace(s, quality=float(self._post[self._index[s.model]]))
            for s in self._steps
        )

    @property
    def estimates(self) -> dict[str, float]:
        """The latest post-hoc estimate of every model that answered (revised by agreement)."""
        return {
            self.names[j]: float(self._post[j])
            for j in self._run
            if j not in self._failed and not math.isnan(self._post[j])
        }

    @property
    def total_cost(self) -> float:
        """USD spent by the steps so far."""
        return float(sum(s.cost_usd for s in self._steps))

    def next_model(self) -> str | None:
        """The name of the model to run next, or None to stop."""
        if self._stopped:
            return None
        choice = self._decide()
        if choice is None:
            self._stopped = True
            return None
        return self.names[choice]

    def observe(
        self,
        model: str,
        text: str,
        *,
        cost_usd: float,
        latency_s: float,
        score: float | None = None,
    ) -> float:
        """Take one model's answer; return its post-hoc quality estimate in [0, 1]."""
        j = self._lookup(model)
        answered = [m for m in self._run if m not in self._failed]
        self._run.append(j)
        self.answers[j] = read_answer(text)
        self._cost[j] = float(cost_usd)
        post = self._strategy.post_hoc(self, j, answered, score)
        self._post[j] = post
        if score is not None:
            self._scored.add(j)
        # each new answer revises the estimates of the answers seen before it, which now
        # have one more answer to agree with (evaluator scores stay as they are)
        for m in answered:
            if m not in self._scored:
                others = [x for x in self._run if x != m and x not in self._failed]
                self._post[m] = self._strategy.post_hoc(self, m, others, None)
        self._steps.append(
            CascadeStep(
                model=model,
                cost_usd=float(cost_usd),
                latency_s=float(latency_s),
                quality=float(post),
                ex_ante=float(self.ante[j]),
            )
        )
        return float(post)

    def failed(self, model: str, *, error: str, latency_s: float) -> None:
        """Note that a model failed (after its retries); it is not proposed again."""
        j = self._lookup(model)
        self._run.append(j)
        self._failed.add(j)
        self._steps.append(
            CascadeStep(
                model=model,
                cost_usd=0.0,
                latency_s=float(latency_s),
                quality=None,
                ex_ante=float(self.ante[j]),
                error=error,
            )
        )

    def final(self) -> str:
        """The model whose answer the call returns: the best post-hoc estimate.

        The threshold cascade returns its last answer, as the paper's baseline does.

        Raises:
            LookupError: no model has answered.
        """
        answered = [j for j in self._run if j not in self._failed]
        if not answered:
            msg = "no model has answered in this cascade"
            raise LookupError(msg)
        if self._strategy.name == "threshold_cascade":
            return self.names[answered[-1]]
        best = max(answered, key=lambda j: (self._post[j], -self._c_ante[j]))
        return self.names[best]

    # -- internals -------------------------------------------------------------
    def _lookup(self, model: str) -> int:
        j = self._index.get(model)
        if j is None:
            msg = f"model must be one of this call's candidates {list(self.names)}, got {model!r}"
            raise ConfigError(msg)
        return j

    def _decide(self) -> int | None:
        strategy = self._strategy
        k = len(self.names)
        answered = tuple(j for j in self._run if j not in self._failed)
        if len(self._run) >= strategy.max_depth or len(self._run) >= k:
            return None
        order = np.argsort(self._c_ante, kind="stable")
        allowed = np.ones(k, dtype=bool)
        allowed[list(self._run)] = False
        if strategy.name == "threshold_cascade":
            if answered and self._post[answered[-1]] >= 1.0 - self.lam:
                return None
            nxt = [j for j in order.tolist() if allowed[j]]
            return nxt[0] if nxt else None
        q = self.ante.copy()
        c = self._c_ante.copy()
        sigma = self._sigma.copy()
        for j in answered:
            q[j] = self._post[j]
            c[j] = self._cost[j]
            sigma[j, :] = 0.0
            sigma[:, j] = 0.0
            sigma[j, j] = _RUN_VARIANCE
        draws = np.clip(joint_samples(q, sigma, strategy.samples(k)), 0.0, 1.0)
        # An answer already seen has its post-hoc estimate in every draw: the tiny run
        # variance jittered around a score of 1.0 and clipped would average below 1.0 and
        # make a dearer model look worth running after an answer known to be right.
        draws[:, list(answered)] = q[list(answered)]
        choice = search_supermodel(
            q,
            c,
            answered,
            self.lam,
            draws=draws,
            max_depth=strategy.max_depth,
            allowed=allowed | np.isin(np.arange(k), answered),
            gamma=strategy.gamma,
            u=self._u,
            cascade=strategy.name == "optimal_cascade",
            order=order,
        )
        return choice.next_model


@dataclass(slots=True)
class LiveCascade:
    """A live cascade strategy (see the module docstring).

    Args:
        name: ``"threshold_cascade"``, ``"optimal_cascade"`` or ``"cascade_routing"``.
        candidates: the pool, with prices (USD per 1M tokens).
        budget_usd: target mean cost per call in USD, or None (quality first).
        estimator: a trained :class:`LiveEstimator`, or None (priors learned online).
        max_depth: models per call at most (the paper's RouterBench value: 5).
        n_samples: quasi-Monte-Carlo samples per expected maximum (the paper: 100).
        gamma: probability of the dearest of tied supermodels.
        rate: dual-ascent step of the budget control.
        lam: the initial multiplier (None: one quality unit per 10 budgets; 0.5 for the
            threshold cascade).
        seed: the generator of the tie mixing and the quasi-Monte-Carlo shift.
    """

    name: str
    candidates: Sequence[Candidate]
    budget_usd: float | None
    estimator: LiveEstimator | None = None
    max_depth: int = DEFAULT_MAX_DEPTH
    n_samples: int = DEFAULT_SAMPLES
    gamma: float = 0.0
    rate: float = 0.2
    lam: float | None = None
    seed: SeedLike = None
    _stats: dict[str, _ModelStats] = field(default_factory=dict)
    _rng: np.random.Generator = field(init=False)
    _samples: dict[int, np.ndarray] = field(default_factory=dict)
    _calls: int = 0
    _spent: float = 0.0
    _lam: float = 0.0
    # One strategy serves every call of a wrapper, from several threads at once (batch).
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self._check_names()
        self._check_numbers()
        self._rng = np.random.default_rng(self.seed)
        if self.budget_usd is None:
            self._lam = 0.0
        elif self.lam is None:
            self._lam = 0.5 if self.name == "threshold_cascade" else 0.1 / self.budget_usd
        else:
            self._lam = float(self.lam)

    def _check_names(self) -> None:
        if self.name not in _KINDS:
            msg = f"strategy must be one of {', '.join(_KINDS)}, got {self.name!r}"
            raise ConfigError(msg)
        if self.budget_usd is not None and not (
            isinstance(self.budget_usd, int | float)
            and not isinstance(self.budget_usd, bool)
            and math.isfinite(self.budget_usd)
            and self.budget_usd > 0
        ):
            msg = f"budget_usd must be a finite number > 0 or None, got {self.budget_usd!r}"
            raise ConfigError(msg)
        if not self.candidates:
            msg = "candidates must name at least one model, got none"
            raise ConfigError(msg)
        if self.estimator is not None and not isinstance(self.estimator, LiveEstimator):
            msg = (
                "estimator must be a trained cascade estimator (pickllm train --cascade) or "
                f"None, got {type(self.estimator).__name__}"
            )
            raise ConfigError(msg)

    def _check_numbers(self) -> None:
        if not (isinstance(self.max_depth, int) and self.max_depth >= 1):
            msg = f"max_depth must be an int >= 1, got {self.max_depth!r}"
            raise ConfigError(msg)
        if not (isinstance(self.n_samples, int) and self.n_samples >= 2):
            msg = f"n_samples must be an int >= 2, got {self.n_samples!r}"
            raise ConfigError(msg)
        if not (isinstance(self.gamma, int | float) and 0.0 <= self.gamma <= 1.0):
            msg = f"gamma must be a number in [0, 1], got {self.gamma!r}"
            raise ConfigError(msg)
        if not (isinstance(self.rate, int | float) and self.rate > 0 and math.isfinite(self.rate)):
            msg = f"rate must be a finite number > 0, got {self.rate!r}"
            raise ConfigError(msg)
        if self.lam is not None and not (isinstance(self.lam, int | float) and self.lam >= 0):
            msg = f"lam must be a number >= 0 or None, got {self.lam!r}"
            raise ConfigError(msg)

    @property
    def current_lam(self) -> float:
        """The multiplier now (moved by the budget control after every call)."""
        return self._lam

    # -- protocol ------------------------------------------------------------
    def start(
        self, query: str, candidates: Sequence[Candidate], *, prompt_tokens: int
    ) -> LiveSession:
        """A new session for ``query`` over ``candidates`` (the models allowed this call)."""
        if not candidates:
            msg = "candidates must name at least one model, got none"
            raise ConfigError(msg)
        with self._lock:
            shift = float(self._rng.random())
        return LiveSession(self, query, candidates, int(prompt_tokens), shift)

    def settle(self, session: CascadeSession) -> None:
        """Learn from a finished call and move ``lam`` towards the budget.

        Raises:
            ConfigError: ``session`` was not started by this strategy.
        """
        if not isinstance(session, LiveSession) or session.strategy is not self:
            msg = f"session must be one this strategy started, got {type(session).__name__}"
            raise ConfigError(msg)
        with self._lock:
            latest = session.estimates
            for step in session.steps:
                stats = self._stat(step.model)
                if step.quality is not None:
                    value = latest.get(step.model, step.quality)
                    stats.learn_quality(min(max(value, 0.0), 1.0))
                if step.error is None:
                    cand = next((c for c in self.candidates if c.name == step.model), None)
                    if cand is not None and cand.output_price > 0:
                        used = step.cost_usd - session.prompt_tokens * cand.input_price / 1e6
                        stats.learn_tokens(max(used, 0.0) * 1e6 / cand.output_price)
            self._calls += 1
            cost = session.total_cost
            self._spent += cost
            if self.budget_usd is None:
                return
            gap = cost / self.budget_usd - 1.0
            lam = self._lam
            if self.name == "threshold_cascade":
                self._lam = min(max(lam + self.rate * gap, 0.0), 1.0)
            else:
                move = min(max(self.rate * gap, -1.0), 1.0)
                self._lam = min(max(lam * math.exp(move), _LAM_BOUNDS[0]), _LAM_BOUNDS[1])

    @property
    def mean_cost(self) -> float:
        """Mean USD per settled call so far."""
        return self._spent / self._calls if self._calls else 0.0

    # -- internals -------------------------------------------------------------
    def samples(self, k: int) -> np.ndarray:
        """The quasi-Monte-Carlo normal samples for ``k`` models (made once per ``k``)."""
        with self._lock:
            if k not in self._samples:
                self._samples[k] = normal_samples(self.n_samples, k, seed=self._rng)
            return self._samples[k]

    def _stat(self, name: str) -> _ModelStats:
        with self._lock:
            return self._stats.setdefault(name, _ModelStats())

    def ex_ante(
        self, query: str, candidates: Sequence[Candidate], prompt_tokens: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ex-ante quality, its covariance and cost of ``candidates`` for a query."""
        names = [c.name for c in candidates]
        stats = [self._stat(n) for n in names]
        cost = np.array(
            [
                (prompt_tokens * c.input_price + s.out_tokens * c.output_price) / 1e6
                for c, s in zip(candidates, stats, strict=True)
            ]
        )
        if self.estimator is not None:
            q, sigma, c_hat = self.estimator.ex_ante(query, names, prompt_tokens)
            return np.asarray(q, float), np.asarray(sigma, float), cost if c_hat is None else c_hat
        q = np.array([s.q_hat for s in stats])
        sigma = np.diag([s.spread for s in stats])
        return q, sigma, cost

    def agreement(self, session: LiveSession, j: int, others: Sequence[int]) -> float:
        """``(q_hat + agreeing) / (1 + others)``: model ``j``'s answer against ``others``."""
        prior = float(session.ante[j])
        if not others:
            return prior
        mine = session.answers[j]
        if mine is None:
            return prior
        agreeing = 0
        for m in others:
            theirs = session.answers[m]
            agreeing += int(theirs is not None and agree(mine, theirs))
        return (prior + agreeing) / (1.0 + len(others))

    def post_hoc(
        self, session: LiveSession, j: int, others: Sequence[int], score: float | None
    ) -> float:
        """The post-hoc estimate of model ``j``'s answer: score, trained model or agreement."""
        if score is not None:
            if not (isinstance(score, int | float) and math.isfinite(score)):
                msg = f"score must be a finite number or None, got {score!r}"
                raise ConfigError(msg)
            return min(max(float(score), 0.0), 1.0)
        if self.estimator is not None:
            run = [*others, j]
            return float(self.estimator.post_hoc(j, session.answers, run, session.ante))
        return self.agreement(session, j, others)
