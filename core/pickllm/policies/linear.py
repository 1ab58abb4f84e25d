"""What the contextual linear policies share: per-model ridge heads over query features.

Each candidate has a ridge-regression head over the query's feature vector ``x`` (the
structural features of :mod:`pickllm.policies.features` unless ``Context.features`` is
given, then those plus a bias). A head keeps ``A = reg * I + sum w x x^T``, its inverse,
``b = sum w x r`` and ``s = sum w x``; its predicted reward for ``x`` is

    mean(x) = c + x^T A^-1 (b - c s)

where ``c`` is the centre, ``prior_mean`` or, when that is None, the running mean of every
reward seen so far (0.5 before the first). Centring matters: the heads learn deviations
from the centre, so an untried model is predicted at the centre, not at 0, and the first
model tried does not win by default (a prototype without centring locked onto it). The
uncertainty of a prediction is ``exploration * sqrt(x^T A^-1 x)``.

Updates are Sherman-Morrison rank-one updates of ``A^-1``, O(d^2) per call. With
``discount < 1`` a head forgets: each of its updates first scales its past by ``discount``
(``A <- discount * A + (1 - discount) * reg * I``, so the prior stays), and ``A^-1`` is then
recomputed, O(d^3) for the small ``d`` of the structural features.

With ``shared_prior`` (Li et al.'s hybrid model, as a prior), a shared ridge head is
also fitted on every reward, whatever the model, over ``x`` plus the model's relative
price ``p`` (0 for the cheapest offered candidate, 1 for the dearest). Its weights
``(w, v)`` are every head's prior: a model is predicted at

    mean(x) = c' + x^T A^-1 (b - c' s + reg * w),  c' = c + v * p

so an untried or rarely tried model is predicted by what all models earned on queries
like this one at its price, not by the bare centre, and a head learns only how its model
departs from the shared fit: 11 heads need not each learn the queries' difficulty and the
cost of a price from scratch.

With a reward prior (:meth:`LinearPolicy.set_prior`, a callable giving each offered
candidate's predicted reward for a context, e.g. a trained query scorer's), the prior is
every head's prior mean, query by query: a model whose prediction is ``p(x)`` is predicted at

    mean(x) = p(x) + x^T A^-1 (b - c s)

where a reward learned with a prior adds ``x (r - p(x))`` to ``b`` and nothing to ``s``:
the heads learn only the prior's error. With no evidence the policy's mean is the prior
exactly (LinUCB then picks the prior's best model), its width the ridge prior's, and
``regularization`` sets how much evidence it takes to override the prior. Learned rewards
without a prior value (a candidate the prior leaves out) are centred on ``c`` as above.

With ``change_threshold`` set, a Page-Hinkley test per model watches its residuals
``e = predicted - observed``: its statistic ``g <- max(0, g + e - change_delta)`` sums the
drops beyond the tolerance, and a change is detected when ``g`` exceeds the threshold.
What a change does: the changed model's head is reset to the prior (or, with
``change_shift``, its past rewards are marked down by the mean shortfall of the run that
set off the test, the calls since ``g`` last stood at 0, so it is at once predicted at
its new level; the shared head, which learned from it too, marks its rewards down the
same way), and every other head keeps the share ``change_keep`` of its evidence (half by
default), which re-opens exploration.

The raw test assumes unbiased predictions and measures in reward units. Neither holds
well: the model a policy picks is the one whose prediction came out high (its residuals
lean positive), and 0/1-like rewards (a graded answer) make a failure of a good model a
large residual, so a few failures in a row set the raw test off on a stationary stream.
With ``change_standardized`` the test runs on

    z = (e - m_i) / sd,   m_i = sum(e_i) / (n_i + 10)

where ``m_i`` is the model's mean residual since its last change (shrunk towards 0 while
it has few: a bias that does not change is not a change) and ``sd`` the residuals'
pooled standard deviation (``residual_sd``, from a prior of 1/12 weighing ten
residuals); ``change_threshold`` and ``change_delta`` are then in standard deviations, a
rule that does not depend on the reward's scale, and the shortfall a change measures is
the run's mean of ``e - m_i``. With ``change_two_sided`` a second statistic
``u <- max(0, u - z - change_delta)`` detects rises the same way (a model that got
better or cheaper is re-explored; with ``change_shift`` it is marked up). On any change
every test starts again, and the changed model's mean residual too.

The features of a decision are kept (by decision id, at most ``max_pending`` of them)
until its reward arrives; a reward for an unknown decision (one made by a clone, or
forgotten) is learned at the running mean of the features seen.
"""

from __future__ import annotations

import math
import zlib
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from pickllm.errors import ConfigError, StateError
from pickllm.policies.base import (
    Choice,
    Policy,
    check_number,
    new_decision_id,
    state_count,
    state_field,
)
from pickllm.policies.features import structural_values
from pickllm.types import Context, Decision, SeedLike

__all__ = ["LinearPolicy", "RewardPrior"]

RewardPrior = Callable[[Context], Mapping[str, float]]
"""A per-query prior: a context's predicted reward per candidate name, each in [0, 1].

For example a trained query scorer's predicted reward of each model on the context's
query (see :meth:`LinearPolicy.set_prior`). A candidate it leaves out is predicted at the
centre, as without a prior.
"""

_RESIDUAL_PRIOR_N = 10.0
"""Weight, in residuals, of the standardized change test's priors (a model's mean
residual 0, the residuals' variance ``_RESIDUAL_PRIOR_VAR``)."""
_RESIDUAL_PRIOR_VAR = 1.0 / 12.0

_Offer = tuple[np.ndarray | None, np.ndarray, np.ndarray]
"""The offered candidates' head indices (None: all heads), prior offsets, relative prices."""


class LinearPolicy(Policy):
    """Base class of the linear contextual policies (no name: not registered itself).

    Args:
        exploration: scale of the uncertainty added to (UCB) or drawn around (Thompson)
            each prediction, ``> 0``.
        regularization: ridge penalty ``> 0``, the prior's precision per feature.
        prior_mean: the reward of an untried model; None uses the running mean reward.
        discount: weight of the past at each update of a head, in ``(0, 1]``.
        change_threshold: Page-Hinkley threshold on a model's cumulative reward drop;
            None disables change detection.
        change_delta: the drop per call the change test tolerates, ``>= 0``.
        change_keep: the share of their evidence the other heads keep when a model's
            change is detected, in [0, 1] (1: only the changed model starts again).
        change_shift: on a detected change, mark the changed model's past rewards down
            by the mean shortfall that set off the test (its head keeps its evidence,
            and its rewards in the shared head are marked down the same way) rather
            than restarting its head from the prior.
        change_standardized: run the change test on standardized residuals: each
            model's residual minus its own mean residual, divided by the pooled
            residual standard deviation; ``change_threshold`` and ``change_delta`` are
            then in units of that standard deviation.
        change_two_sided: also detect rises (a model whose rewards climb above its
            predictions), with the same threshold; the response is the same as to a
            drop (with ``change_shift``, the model is marked up by the rise measured).
        price_prior: how much lower the prior mean of the dearest offered candidate is
            than the cheapest one's (linear in price between them), in [0, 1].
        key_buckets: one-hot features of ``Context.key`` (hashed into this many buckets),
            a per-key intercept for every model; 0 ignores the key.
        shared_prior: each head's prior mean is a shared head fitted on every reward
            (features and relative price); False centres every head on ``c`` alone.
        max_pending: the most decisions whose features are kept for their reward.
        seed: seed of the policy's generator.
    """

    contextual: ClassVar[bool] = True

    def __init__(
        self,
        *,
        exploration: float,
        regularization: float = 1.0,
        prior_mean: float | None = None,
        discount: float = 1.0,
        change_threshold: float | None = None,
        change_delta: float = 0.05,
        change_keep: float = 0.5,
        change_shift: bool = False,
        change_standardized: bool = False,
        change_two_sided: bool = False,
        price_prior: float = 0.0,
        key_buckets: int = 16,
        shared_prior: bool = False,
        max_pending: int = 10_000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed=seed)
        owner = type(self).__name__
        self._alpha = check_number(owner, "exploration", exploration, low=0.0, low_open=True)
        self.exploration = exploration
        self._reg = check_number(owner, "regularization", regularization, low=0.0, low_open=True)
        self.regularization = regularization
        self._prior: float | None = None
        if prior_mean is not None:
            self._prior = check_number(owner, "prior_mean", prior_mean, low=0.0, high=1.0)
        self.prior_mean = prior_mean
        self._gamma = check_number(owner, "discount", discount, low=0.0, high=1.0, low_open=True)
        self.discount = discount
        self._threshold: float | None = None
        if change_threshold is not None:
            self._threshold = check_number(
                owner, "change_threshold", change_threshold, low=0.0, low_open=True
            )
        self.change_threshold = change_threshold
        self._delta = check_number(owner, "change_delta", change_delta, low=0.0)
        self.change_delta = change_delta
        self._keep = check_number(owner, "change_keep", change_keep, low=0.0, high=1.0)
        self.change_keep = change_keep
        self.change_shift = _check_bool(owner, "change_shift", change_shift)
        self.change_standardized = _check_bool(owner, "change_standardized", change_standardized)
        self.change_two_sided = _check_bool(owner, "change_two_sided", change_two_sided)
        self._price_prior = check_number(owner, "price_prior", price_prior, low=0.0, high=1.0)
        self.price_prior = price_prior
        if isinstance(key_buckets, bool) or not isinstance(key_buckets, int):
            msg = f"{owner} key_buckets must be an int, got {key_buckets!r}"
            raise TypeError(msg)
        if key_buckets < 0:
            msg = f"{owner} key_buckets must be >= 0, got {key_buckets!r}"
            raise ConfigError(msg)
        self.key_buckets = key_buckets
        self.shared_prior = _check_bool(owner, "shared_prior", shared_prior)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int):
            msg = f"{owner} max_pending must be an int, got {max_pending!r}"
            raise TypeError(msg)
        if max_pending < 1:
            msg = f"{owner} max_pending must be >= 1, got {max_pending!r}"
            raise ConfigError(msg)
        self.max_pending = max_pending
        self._reward_prior: RewardPrior | None = None
        self._reset()

    def _reset(self) -> None:
        self._dim = 0
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._a = np.zeros((0, 0, 0))
        self._a_inv = np.zeros((0, 0, 0))
        self._b = np.zeros((0, 0))
        self._s = np.zeros((0, 0))
        # Per head, the features of the rewards learned against a prior value (summed
        # like s): what a change_shift marks down besides s.
        self._sp = np.zeros((0, 0))
        self._prior_used = False  # some reward was learned against a prior value
        self._n = np.zeros(0)
        self._price = np.zeros(0)  # relative price per model, as last offered
        self._ph = np.zeros(0)  # Page-Hinkley statistic per model
        # The shortfalls (predicted minus observed) summed, and counted, since each
        # model's statistic was last 0: their mean is the drop a detected change measures.
        self._run_sum = np.zeros(0)
        self._run_n = np.zeros(0)
        # The same for rises (the two-sided test): statistic, and its run's residuals.
        self._ph_up = np.zeros(0)
        self._up_sum = np.zeros(0)
        self._up_n = np.zeros(0)
        # Residuals per model since its last change (sum and count: its mean residual,
        # the standardized test's reference), and the centred residuals' squares pooled
        # over the models (their standard deviation, the test's unit).
        self._res_sum = np.zeros(0)
        self._res_n = np.zeros(0)
        self._res_sq = 0.0
        self._res_sq_n = 0.0
        # The shared head over (x, relative price): A, its inverse, sum z r, sum z, and
        # its weights (derived from the others and the centre, refreshed on each update).
        self._a0: np.ndarray = np.zeros((0, 0))
        self._a0_inv: np.ndarray = np.zeros((0, 0))
        self._b0 = np.zeros(0)
        self._s0 = np.zeros(0)
        self._s0_model = np.zeros((0, 0))  # each model's share of the shared head's s
        self._w0 = np.zeros(0)
        self._reward_sum = 0.0
        self._reward_n = 0.0
        self._x_sum = np.zeros(0)
        self._x_n = 0.0
        self._changes = 0
        # Decision id -> (features, predicted mean, prior value of the chosen model or NaN,
        # the chosen model's relative price in that offer).
        self._pending: dict[str, tuple[np.ndarray, float, float, float]] = {}
        # Offered (name, price) pairs -> the offer. Head indices are None when the offered
        # are all heads in order (the usual case): the heads' arrays are used without a
        # gathering copy.
        self._offer_cache: dict[tuple[tuple[str, float], ...], _Offer] = {}

    # ------------------------------------------------------------------ read-only views
    @property
    def models(self) -> list[str]:
        """The candidates with a head, in the order they were first offered."""
        return list(self._names)

    @property
    def counts(self) -> dict[str, float]:
        """The (discounted) number of rewards learned per candidate."""
        return {n: float(self._n[i]) for i, n in enumerate(self._names)}

    @property
    def changes(self) -> int:
        """How many changes the Page-Hinkley test detected."""
        return self._changes

    @property
    def centre(self) -> float:
        """The reward the heads are centred on (``prior_mean`` or the running mean)."""
        if self._prior is not None:
            return self._prior
        return self._reward_sum / self._reward_n if self._reward_n > 0 else 0.5

    @property
    def residual_sd(self) -> float:
        """The pooled standard deviation of the centred residuals (the standardized test's unit).

        It starts from a prior of ``1/12`` (a uniform reward's variance) that weighs as
        much as ten residuals.
        """
        prior = _RESIDUAL_PRIOR_N * _RESIDUAL_PRIOR_VAR
        return math.sqrt((self._res_sq + prior) / (self._res_sq_n + _RESIDUAL_PRIOR_N))

    def predict(self, context: Context) -> dict[str, tuple[float, float]]:
        """``(mean, width)`` of the predicted reward of every offered candidate.

        ``width`` is ``exploration * sqrt(x^T A^-1 x)``: the UCB bonus, or the standard
        deviation Thompson sampling draws with.
        """
        x = self._features(context)
        offer = self._offer(context)
        mean, width = self._predict(x, offer, self._prior_values(context))
        return {
            c.name: (float(m), float(w))
            for c, m, w in zip(context.candidates, mean, width, strict=True)
        }

    @property
    def blocking(self) -> bool:
        """True with a reward prior: it may run a model (a trained scorer) on each query."""
        return self._reward_prior is not None

    def clone(self, **overrides: Any) -> Self:
        """A fresh copy with the same hyperparameters and the same reward prior."""
        twin = super().clone(**overrides)
        twin.set_prior(self._reward_prior)
        return twin

    @property
    def prior(self) -> RewardPrior | None:
        """The reward prior set by :meth:`set_prior`, if any."""
        return self._reward_prior

    def set_prior(self, prior: RewardPrior | None) -> None:
        """Make ``prior``'s predicted rewards every head's prior mean, query by query.

        ``prior(context)`` gives the predicted reward (in [0, 1]) of the context's
        candidates by name, e.g. a trained query scorer's prediction for its query. With
        no evidence, a candidate is predicted at exactly that value (so LinUCB picks the
        prior's best candidate, and Thompson sampling draws around it); each reward then
        learned teaches the head only the prior's error on it, ``reward - prior``, so
        online feedback corrects the prior where it is wrong and leaves it where it is
        right. ``regularization`` is how many rewards per feature it takes to move a
        head's prediction halfway from the prior; :meth:`warm_start` with the prior's
        own predictions adds confidence in it (narrower widths) without moving it.

        The prior is called on every routed query; as it may run a model, async callers
        route in a worker thread while a prior is set (:attr:`blocking`). The prior is
        code, not state: it is not saved with ``state_dict()`` (``clone()`` keeps it, so a
        ``per_context`` learner per key starts from it too). A policy that learned against
        a prior refuses to route without one (set it again after loading a saved state).
        Routers sharing a state store share the heads' sums, which hold the residuals:
        give each the same prior. Not with ``shared_prior``: both would set the heads'
        prior mean.

        Args:
            prior: the per-query prior; None removes it.

        Raises:
            TypeError: ``prior`` is not callable.
            ConfigError: the policy has ``shared_prior=True``.

        Examples:
            >>> from pickllm.types import Candidate, Context
            >>> from pickllm.policies import LinUCB
            >>> pool = (Candidate(name="coder"), Candidate(name="writer"))
            >>> scorer = {"def f(x): return x;": {"coder": 0.8, "writer": 0.3},
            ...           "Write a poem.": {"coder": 0.6, "writer": 0.5}}
            >>> policy = LinUCB(regularization=5.0, seed=0)
            >>> policy.set_prior(lambda context: scorer[context.query])
            >>> poem = Context(query="Write a poem.", candidates=pool)
            >>> policy.predict(poem)["writer"][0]  # no evidence: the prior's prediction
            0.5
            >>> policy.select(poem).candidate.name  # the prior's best
            'coder'
            >>> for _ in range(20):  # the prior is wrong about poems
            ...     decision = policy.select(poem)
            ...     policy.update(decision, 0.9 if decision.candidate.name == "writer" else 0.2)
            >>> policy.select(poem).candidate.name
            'writer'
        """
        if prior is not None and not callable(prior):
            msg = f"{type(self).__name__} prior must be callable or None, got {prior!r}"
            raise TypeError(msg)
        if prior is not None and self.shared_prior:
            msg = (
                f"{type(self).__name__} with shared_prior=True cannot take a reward prior: "
                "both set the heads' prior mean (use shared_prior=False)"
            )
            raise ConfigError(msg)
        self._reward_prior = prior

    def warm_start(
        self,
        contexts: Sequence[Context],
        rewards: np.ndarray,
        models: Sequence[str],
        *,
        weight: float = 1.0,
    ) -> None:
        """Start from predicted rewards, e.g. a trained query scorer's, before learning online.

        Every (context, model) pair adds a pseudo-observation of weight ``weight`` to the
        model's head, as if the model had been called on the context and earned the
        predicted reward. Online rewards then refine (and, with ``discount``, replace)
        them. A ``weight`` below 1 trusts the predictions less than real rewards. With a
        reward prior (:meth:`set_prior`), the heads learn the rewards' departures from it.

        Args:
            contexts: the contexts to learn from (their query, key or features).
            rewards: predicted reward per context and model, shape ``(len(contexts),
                len(models))``, in [0, 1]; for a ``pickllm train`` scorer, for example,
                ``scorer.predict_quality(queries)`` (quality as the reward).
            models: the candidate names of ``rewards``' columns.
            weight: the weight of each pseudo-observation, ``> 0``.

        Raises:
            ConfigError: shapes disagree, rewards outside [0, 1] or a bad weight.
        """
        w = check_number(type(self).__name__, "weight", weight, low=0.0, low_open=True)
        r = np.asarray(rewards, dtype=float)
        if r.shape != (len(contexts), len(models)):
            msg = (
                f"rewards must have shape ({len(contexts)}, {len(models)}) (contexts, "
                f"models), got {r.shape}"
            )
            raise ConfigError(msg)
        if not np.isfinite(r).all() or (r < 0).any() or (r > 1).any():
            msg = "rewards must be finite numbers in [0, 1]"
            raise ConfigError(msg)
        if not contexts:
            return
        x = np.array([self._features(c) for c in contexts])
        heads = [self._head(m) for m in models]
        for c in contexts:
            if c.candidates:
                self._offer(c)  # the models' relative prices, for the shared head
                break
        # The prior's value per context and model (NaN where it gives none).
        pv = np.full(r.shape, math.nan)
        prior = self._reward_prior
        if prior is not None:
            pv = np.array([self._prior_of(prior, c, models) for c in contexts])
        gram = w * (x.T @ x)
        for col, i in enumerate(heads):
            covered = ~np.isnan(pv[:, col])
            target = r[:, col] - np.where(covered, pv[:, col], 0.0)
            self._a[i] += gram
            self._a_inv[i] = np.linalg.inv(self._a[i])
            self._b[i] += w * (x.T @ target)
            self._s[i] += w * x[~covered].sum(axis=0)
            self._sp[i] += w * x[covered].sum(axis=0)
            self._n[i] += w * len(contexts)
            if self.shared_prior:
                z = np.column_stack((x, np.full(len(contexts), self._price[i])))
                self._a0 += w * (z.T @ z)
                self._b0 += w * (z.T @ r[:, col])
                self._s0 += w * z.sum(axis=0)
                self._s0_model[i] += w * z.sum(axis=0)
        self._prior_used = self._prior_used or bool((~np.isnan(pv)).any())
        self._reward_sum += w * float(r.sum())
        self._reward_n += w * r.size
        self._x_sum += x.sum(axis=0)
        self._x_n += len(contexts)
        if self.shared_prior:
            self._a0_inv = np.linalg.inv(self._a0)
            self._refresh_shared()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _choose(self, mean: np.ndarray, width: np.ndarray, context: Context) -> Choice:
        """Pick among the offered candidates from the heads' predictions."""

    def _select(self, context: Context) -> Choice:
        x = self._features(context)
        offer = self._offer(context)
        prior = self._prior_values(context)
        mean, width = self._predict(x, offer, prior)
        choice = self._choose(mean, width, context)
        pending = self._pending
        if len(pending) >= self.max_pending:
            del pending[next(iter(pending))]
        decision_id = new_decision_id()
        prior_value = math.nan if prior is None else float(prior[choice.index])
        price = float(offer[2][choice.index])
        pending[decision_id] = (x, float(mean[choice.index]), prior_value, price)
        return Choice(
            choice.index,
            choice.probability,
            choice.scores,
            choice.members,
            choice.kind,
            decision_id,
        )

    def _update(self, decision: Decision, reward: float) -> None:
        found = self._pending.pop(decision.decision_id, None)
        if found is None:
            # Nothing seen yet: the features of an empty query.
            # Nor is the query, so the prior's value: learned against the centre.
            x = self._x_sum / self._x_n if self._x_n > 0 else self._features(Context())
            predicted = None
            prior_value = math.nan
        else:
            x, predicted, prior_value, price = found
        i = self._head(decision.candidate.name)
        if predicted is None:
            price = float(self._price[i])  # the price it was last offered at
            offer = (np.array([i], dtype=np.intp), np.zeros(1), self._price[[i]])
            predicted = float(self._predict(x, offer)[0][0])
        self._learn(i, x, reward, prior_value, price)
        if self._threshold is not None:
            self._page_hinkley(i, predicted - reward)

    # ------------------------------------------------------------------ internals
    def _prior_values(self, context: Context) -> np.ndarray | None:
        """The prior's value per offered candidate (NaN where none); None without a prior.

        Raises:
            ConfigError: the heads learned against a prior and none is set.
        """
        if self._reward_prior is None:
            if self._prior_used:
                msg = (
                    f"{type(self).__name__} learned against a reward prior: set it again "
                    "with set_prior() before routing (a prior is not saved with the state)"
                )
                raise ConfigError(msg)
            return None
        return self._prior_of(self._reward_prior, context, [c.name for c in context.candidates])

    def _prior_of(self, prior: RewardPrior, context: Context, names: Sequence[str]) -> np.ndarray:
        """``prior``'s predicted reward of each of ``names`` (NaN where it gives none)."""
        given = prior(context)
        if not isinstance(given, Mapping):
            msg = (
                f"{type(self).__name__} prior must return a mapping of candidate names to "
                f"predicted rewards, got {type(given).__name__}"
            )
            raise ConfigError(msg)
        out = np.full(len(names), math.nan)
        for j, name in enumerate(names):
            v = given.get(name)
            if v is None:
                continue
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float | np.number)
                or not 0.0 <= float(v) <= 1.0  # NaN fails too
            ):
                msg = (
                    f"{type(self).__name__} prior: the predicted reward of {name!r} must be "
                    f"a number in [0, 1], got {v!r}"
                )
                raise ConfigError(msg)
            out[j] = float(v)
        return out

    def _features(self, context: Context) -> np.ndarray:
        x = self._context_features(context)
        self._ensure_dim(x.shape[0])
        return x

    def _context_features(self, context: Context) -> np.ndarray:
        """The feature vector of ``context`` (a subclass may extend it)."""
        key_part = [0.0] * self.key_buckets  # one-hot of the hashed key, if any
        if key_part and context.key is not None:
            key_part[zlib.crc32(context.key.encode()) % self.key_buckets] = 1.0
        if context.features is None:
            x = np.array((*structural_values(context.query), *key_part))
        else:
            given = np.asarray(context.features, dtype=float)
            x = np.concatenate(((1.0,), given, key_part))
        return x

    def _ensure_dim(self, dim: int) -> None:
        if self._dim == 0:
            self._dim = dim
            k = len(self._names)
            eye = np.eye(dim) * self._reg
            self._a = np.broadcast_to(eye, (k, dim, dim)).copy()
            self._a_inv = np.broadcast_to(np.eye(dim) / self._reg, (k, dim, dim)).copy()
            self._b = np.zeros((k, dim))
            self._s = np.zeros((k, dim))
            self._sp = np.zeros((k, dim))
            self._x_sum = np.zeros(dim)
            self._a0 = np.eye(dim + 1) * self._reg
            self._a0_inv = np.eye(dim + 1) / self._reg
            self._b0 = np.zeros(dim + 1)
            self._s0 = np.zeros(dim + 1)
            self._s0_model = np.zeros((k, dim + 1))
            self._w0 = np.zeros(dim + 1)
        elif dim != self._dim:
            msg = (
                f"{type(self).__name__} learned on {self._dim} features, "
                f"got a context with {dim} (Context.features changed size)"
            )
            raise ConfigError(msg)

    def _head(self, name: str) -> int:
        i = self._index.get(name)
        if i is not None:
            return i
        d = self._dim
        i = len(self._names)
        self._names.append(name)
        self._index[name] = i
        self._a = np.concatenate((self._a, (np.eye(d) * self._reg)[None]))
        self._a_inv = np.concatenate((self._a_inv, (np.eye(d) / self._reg)[None]))
        self._b = np.concatenate((self._b, np.zeros((1, d))))
        self._s = np.concatenate((self._s, np.zeros((1, d))))
        self._sp = np.concatenate((self._sp, np.zeros((1, d))))
        self._n = np.append(self._n, 0.0)
        self._s0_model = np.concatenate((self._s0_model, np.zeros((1, d + 1 if d else 0))))
        self._price = np.append(self._price, 0.0)
        self._ph = np.append(self._ph, 0.0)
        self._run_sum = np.append(self._run_sum, 0.0)
        self._run_n = np.append(self._run_n, 0.0)
        self._ph_up = np.append(self._ph_up, 0.0)
        self._up_sum = np.append(self._up_sum, 0.0)
        self._up_n = np.append(self._up_n, 0.0)
        self._res_sum = np.append(self._res_sum, 0.0)
        self._res_n = np.append(self._res_n, 0.0)
        self._offer_cache.clear()
        return i

    def _offer(self, context: Context) -> _Offer:
        """Head indices (None: all heads, in order), prior offsets, relative prices.

        A relative price is 0 for the cheapest offered candidate, 1 for the dearest.
        """
        cands = context.candidates
        offered = tuple([(c.name, c.input_price + c.output_price) for c in cands])
        cache = self._offer_cache
        found = cache.get(offered)
        if found is None:
            heads = [self._head(n) for n, _ in offered]
            all_heads = heads == list(range(len(self._names)))
            idx = None if all_heads else np.array(heads, dtype=np.intp)
            prices = np.array([p for _, p in offered])
            spread = float(prices.max() - prices.min())
            relative = (prices - prices.min()) / spread if spread > 0.0 else np.zeros(len(cands))
            if len(cache) >= 64:
                cache.clear()
            cache[offered] = found = (idx, -self._price_prior * relative, relative)
        idx, _, relative = found
        self._price[slice(None) if idx is None else idx] = relative  # as last offered
        return found

    def _predict(
        self, x: np.ndarray, offer: _Offer, prior: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        idx, offset, price = offer
        c = self.centre + offset  # the prior mean of each offered candidate
        # A reward prior's value replaces the centre as the prediction's base (the heads'
        # rewards learned against it are residuals; those learned without, centred on c).
        base = c if prior is None else np.where(np.isnan(prior), c, prior)
        if idx is None:
            a_inv, b, s = self._a_inv, self._b, self._s
        else:
            a_inv, b, s = self._a_inv[idx], self._b[idx], self._s[idx]
        q = a_inv @ x  # (k, d): A^-1 x per head
        var = q @ x
        if self.shared_prior:
            w0 = self._w0
            c = c + w0[-1] * price
            mean = c + ((b - c[:, None] * s) * q).sum(axis=1) + self._reg * (q @ w0[:-1])
        else:
            mean = base + ((b - c[:, None] * s) * q).sum(axis=1)
        return mean, self._alpha * np.sqrt(np.maximum(var, 0.0))

    def _refresh_shared(self) -> None:
        """The shared head's weights, for the current centre."""
        self._w0 = self._a0_inv @ (self._b0 - self.centre * self._s0)

    def _learn(self, i: int, x: np.ndarray, reward: float, prior: float, price: float) -> None:
        """Learn ``reward`` for head ``i``, chosen at relative ``price``.

        Against the reward prior's value ``prior`` unless it is NaN.
        """
        g = self._gamma
        xx = x[:, None] * x  # the outer product x x^T
        with_prior = not math.isnan(prior)
        # Against a prior value the head learns the residual, and x goes to sp, not s.
        target = reward - prior if with_prior else reward
        self._prior_used = self._prior_used or with_prior
        sums = self._sp if with_prior else self._s
        if g < 1.0:
            a = g * self._a[i] + xx
            a.flat[:: self._dim + 1] += (1.0 - g) * self._reg  # the prior's share of the past
            self._a[i] = a
            self._a_inv[i] = np.linalg.inv(a)
            self._b[i] = g * self._b[i] + target * x
            self._s[i] *= g
            self._sp[i] *= g
            sums[i] += x
            self._n[i] = g * self._n[i] + 1.0
        else:
            # Sherman-Morrison: (A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x).
            a_inv = self._a_inv[i]
            u = a_inv @ x
            a_inv -= u[:, None] * (u / (1.0 + float(u @ x)))
            self._a[i] += xx
            self._b[i] += target * x
            sums[i] += x
            self._n[i] += 1.0
        self._reward_sum += reward
        self._reward_n += 1.0
        self._x_sum += x
        self._x_n += 1.0
        if self.shared_prior:
            self._learn_shared(i, np.append(x, price), reward)

    def _learn_shared(self, i: int, z: np.ndarray, reward: float) -> None:
        g = self._gamma
        if g < 1.0:
            a = g * self._a0 + z[:, None] * z
            a.flat[:: self._dim + 2] += (1.0 - g) * self._reg
            self._a0 = a
            self._a0_inv = np.linalg.inv(a)
            self._b0 = g * self._b0 + reward * z
            self._s0 = g * self._s0 + z
            self._s0_model *= g
        else:
            u = self._a0_inv @ z
            self._a0_inv -= u[:, None] * (u / (1.0 + float(u @ z)))
            self._a0 += z[:, None] * z
            self._b0 += reward * z
            self._s0 += z
        self._s0_model[i] += z
        self._refresh_shared()

    def _page_hinkley(self, i: int, drop: float) -> None:
        """Feed model ``i``'s residual (predicted minus observed) to its change test."""
        if self.change_standardized:
            # Centred on the model's own mean residual (shrunk towards 0 while it has few):
            # a model's predictions may be biased (a chosen model's are optimistic), and
            # a bias that does not change is not a change.
            centred = drop - self._res_sum[i] / (self._res_n[i] + _RESIDUAL_PRIOR_N)
            z = centred / self.residual_sd
            self._res_sum[i] += drop
            self._res_n[i] += 1.0
            self._res_sq += centred * centred
            self._res_sq_n += 1.0
        else:
            centred = z = drop
        ph = max(0.0, float(self._ph[i]) + z - self._delta)
        self._ph[i] = ph
        if ph == 0.0:
            self._run_sum[i] = self._run_n[i] = 0.0
        else:
            self._run_sum[i] += centred
            self._run_n[i] += 1.0
        up = 0.0
        if self.change_two_sided:
            up = max(0.0, float(self._ph_up[i]) - z - self._delta)
            self._ph_up[i] = up
            if up == 0.0:
                self._up_sum[i] = self._up_n[i] = 0.0
            else:
                self._up_sum[i] += centred
                self._up_n[i] += 1.0
        if self._threshold is None:
            return
        if ph > self._threshold:
            shift = float(self._run_sum[i] / self._run_n[i])
        elif up > self._threshold:
            shift = float(self._up_sum[i] / self._up_n[i])  # negative: a rise
        else:
            return
        self._on_change(i, shift)

    def _on_change(self, i: int, shift: float) -> None:
        """Model ``i`` changed by ``shift`` (its mean shortfall, negative for a rise)."""
        self._changes += 1
        d = self._dim
        eye = np.eye(d) * self._reg
        if self.change_shift:
            # The changed model's past rewards are marked down by the measured drop: its
            # head keeps its evidence (what it learned of the queries) at the new level.
            self._b[i] -= shift * (self._s[i] + self._sp[i])
            if self.shared_prior:
                # The shared head learned from the changed model too: its rewards there
                # are marked down the same way.
                self._b0 -= shift * self._s0_model[i]
                self._refresh_shared()
        else:
            # The degraded model starts again from the prior ...
            self._a[i] = eye
            self._a_inv[i] = np.eye(d) / self._reg
            self._b[i] = 0.0
            self._s[i] = 0.0
            self._sp[i] = 0.0
            self._n[i] = 0.0
        # ... and every other model keeps a share of its evidence: exploration re-opens.
        for j in range(len(self._names) if self._keep < 1.0 else 0):
            if j != i:
                self._a[j] = eye + self._keep * (self._a[j] - eye)
                self._a_inv[j] = np.linalg.inv(self._a[j])
                self._b[j] *= self._keep
                self._s[j] *= self._keep
                self._sp[j] *= self._keep
                self._n[j] *= self._keep
        if self.shared_prior and self._keep < 1.0:
            eye0 = np.eye(d + 1) * self._reg
            self._a0 = eye0 + self._keep * (self._a0 - eye0)
            self._a0_inv = np.linalg.inv(self._a0)
            self._b0 *= self._keep
            self._s0 *= self._keep
            self._s0_model *= self._keep
            self._refresh_shared()
        self._ph[:] = 0.0
        self._run_sum[:] = 0.0
        self._run_n[:] = 0.0
        self._ph_up[:] = 0.0
        self._up_sum[:] = 0.0
        self._up_n[:] = 0.0
        # The changed model's residuals start again (its head is at its new level).
        self._res_sum[i] = self._res_n[i] = 0.0

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, Any]:
        return {
            "dim": self._dim,
            "models": list(self._names),
            "A": self._a.tolist(),
            "A_inv": self._a_inv.tolist(),
            "b": self._b.tolist(),
            "s": self._s.tolist(),
            "prior_s": self._sp.tolist(),
            "prior_used": self._prior_used,
            "n": self._n.tolist(),
            "page_hinkley": self._ph.tolist(),
            "run_sum": self._run_sum.tolist(),
            "run_n": self._run_n.tolist(),
            "page_hinkley_up": self._ph_up.tolist(),
            "up_sum": self._up_sum.tolist(),
            "up_n": self._up_n.tolist(),
            "residual_sum": self._res_sum.tolist(),
            "residual_n": self._res_n.tolist(),
            "residual_sq": self._res_sq,
            "residual_sq_n": self._res_sq_n,
            "price": self._price.tolist(),
            "shared_A": self._a0.tolist(),
            "shared_A_inv": self._a0_inv.tolist(),
            "shared_b": self._b0.tolist(),
            "shared_s": self._s0.tolist(),
            "shared_s_model": self._s0_model.tolist(),
            "reward_sum": self._reward_sum,
            "reward_n": self._reward_n,
            "x_sum": self._x_sum.tolist(),
            "x_n": self._x_n,
            "changes": self._changes,
        }

    def _optional_state(self, state: Mapping[str, Any], k: int, d0: int) -> dict[str, np.ndarray]:
        """The shared head, the change tests' runs and residuals and the prior sums, checked.

        States saved before these existed lack them: they start fresh.
        """
        pol = self.name
        fields = {
            "run_sum": np.zeros(k),
            "run_n": np.zeros(k),
            "page_hinkley_up": np.zeros(k),
            "up_sum": np.zeros(k),
            "up_n": np.zeros(k),
            "residual_sum": np.zeros(k),
            "residual_n": np.zeros(k),
            "residual_sq": np.zeros(()),
            "residual_sq_n": np.zeros(()),
            "price": np.zeros(k),
            "prior_s": np.zeros((k, max(d0 - 1, 0))),  # the heads' dim
            "shared_A": np.eye(d0) * self._reg,
            "shared_A_inv": np.eye(d0) / self._reg,
            "shared_b": np.zeros(d0),
            "shared_s": np.zeros(d0),
            "shared_s_model": np.zeros((k, d0)),
        }
        for f, fresh in fields.items():
            if f in state:
                fields[f] = _array(pol, state, f, fresh.shape)
        counts = ("run_n", "page_hinkley_up", "up_n", "residual_n", "residual_sq", "residual_sq_n")
        if any((fields[f] < 0).any() for f in counts):
            msg = f"state of policy {pol!r}: counts must be >= 0"
            raise StateError(msg)
        return fields

    def _set_state(self, state: Mapping[str, Any]) -> None:
        pol = self.name
        dim = state_count(pol, "dim", state_field(pol, state, "dim"))
        names = state_field(pol, state, "models")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            msg = f"state of policy {pol!r}: models must be a list of names, got {names!r}"
            raise StateError(msg)
        if len(set(names)) != len(names):
            msg = f"state of policy {pol!r}: models {names!r} repeat a name"
            raise StateError(msg)
        k = len(names)
        a = _array(pol, state, "A", (k, dim, dim))
        a_inv = _array(pol, state, "A_inv", (k, dim, dim))
        b = _array(pol, state, "b", (k, dim))
        s = _array(pol, state, "s", (k, dim))
        n = _array(pol, state, "n", (k,))
        ph = _array(pol, state, "page_hinkley", (k,))
        d0 = dim + 1 if dim else 0
        shared = self._optional_state(state, k, d0)
        x_sum = _array(pol, state, "x_sum", (dim,))
        scalars = {f: _array(pol, state, f, ()) for f in ("reward_sum", "reward_n", "x_n")}
        changes = state_count(pol, "changes", state_field(pol, state, "changes"))
        prior_used = _flag(pol, state, "prior_used")  # absent before reward priors
        if (n < 0).any() or (ph < 0).any() or scalars["reward_n"] < 0 or scalars["x_n"] < 0:
            msg = f"state of policy {pol!r}: counts must be >= 0"
            raise StateError(msg)
        # Decisions routed before the load keep their features (a shared store's sync
        # loads the merged state between a decision and its reward).
        pending = self._pending if dim == self._dim else {}
        self._reset()
        self._pending = pending
        self._dim = dim
        self._names = list(names)
        self._index = {name: i for i, name in enumerate(names)}
        self._a, self._a_inv, self._b, self._s, self._n, self._ph = a, a_inv, b, s, n, ph
        self._price = shared["price"]
        self._sp, self._prior_used = shared["prior_s"], prior_used
        self._run_sum, self._run_n = shared["run_sum"], shared["run_n"]
        self._ph_up, self._up_sum, self._up_n = (
            shared["page_hinkley_up"],
            shared["up_sum"],
            shared["up_n"],
        )
        self._res_sum, self._res_n = shared["residual_sum"], shared["residual_n"]
        self._res_sq = float(shared["residual_sq"])
        self._res_sq_n = float(shared["residual_sq_n"])
        self._a0, self._a0_inv = shared["shared_A"], shared["shared_A_inv"]
        self._b0, self._s0 = shared["shared_b"], shared["shared_s"]
        self._s0_model = shared["shared_s_model"]
        self._x_sum = x_sum
        self._reward_sum = float(scalars["reward_sum"])
        self._reward_n = float(scalars["reward_n"])
        self._x_n = float(scalars["x_n"])
        self._changes = changes
        self._w0 = np.zeros(d0)
        if d0:
            self._refresh_shared()


def _flag(pol: str, state: Mapping[str, Any], field: str) -> bool:
    """A boolean state field, False when absent."""
    value = state.get(field, False)
    if not isinstance(value, bool):
        msg = f"state of policy {pol!r}: {field} must be a bool, got {value!r}"
        raise StateError(msg)
    return value


def _check_bool(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        msg = f"{owner} {name} must be a bool, got {value!r}"
        raise TypeError(msg)
    return value


def _array(pol: str, state: Mapping[str, Any], field: str, shape: tuple[int, ...]) -> np.ndarray:
    raw = state_field(pol, state, field)
    try:
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        msg = f"state of policy {pol!r}: {field} must be numbers, got {raw!r}"
        raise StateError(msg) from exc
    if arr.size == 0 and math.prod(shape) == 0:
        arr = arr.reshape(shape)
    if isinstance(raw, bool) or arr.shape != shape:
        msg = f"state of policy {pol!r}: {field} must have shape {shape}, got {arr.shape}"
        raise StateError(msg)
    if not np.isfinite(arr).all():
        msg = f"state of policy {pol!r}: {field} must be finite numbers"
        raise StateError(msg)
    return arr
