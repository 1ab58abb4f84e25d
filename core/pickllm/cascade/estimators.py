"""Quality and cost estimators of cascade routing, with one interface.

A cascade decides from :class:`Estimates`: per model a quality estimate ``q_hat``, the
covariance ``sigma`` of those estimates (the paper's uncertainty), and a cost estimate
``c_hat``. Before a model runs its estimate is *ex-ante*; once it has run it is
*post-hoc* and its cost is the actual one. An offline estimator answers
``estimate(row, run)`` for a row of a recorded table and the models already run on it.

* :class:`NoisyOracle`: the paper's RouterBench protocol (algorithm notes §3.6): true
  quality plus Gaussian noise (``sigma_ante`` before a model runs, ``sigma_post`` after),
  calibrated by a linear regression per model fitted on training rows; the uncertainty of
  an unrun model is the training standard deviation of (calibrated ex-ante - calibrated
  post-hoc); run models get variance 1e-6.
* :class:`LearnedEstimator`: real estimators. Ex-ante: a trained query scorer's
  predictions, with the covariance of their residuals on held-out training rows (per
  task). Post-hoc: :class:`PostHocModel`, a logistic regression per task on the ex-ante
  estimate, the answer's features and its agreement with the answers already seen
  (:mod:`pickllm.cascade.answers`); or the user's evaluator score when there is one.
  After each step the unrun models' estimates are conditioned on what was seen: a
  Gaussian update with the residual covariance (``q_U + S_UR (S_RR + V)^-1 (p_R - q_R)``,
  ``V`` the post-hoc noise), so a cheap model's wrong answer lowers the estimates of
  the models whose errors correlate with its own.
* :class:`TokenCostModel`: ex-ante cost from prompt tokens and a predicted output length
  per model (least squares of the recorded cost on the prompt tokens per model and task);
  post-hoc cost is the call's actual cost.

Examples:
    >>> import numpy as np
    >>> truth = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]] * 5)
    >>> oracle = NoisyOracle.fit(truth, np.ones_like(truth), ante=0.6, post=0.3,
    ...                          fit_rows=np.arange(20), seed=0)
    >>> e = oracle.estimate(0, (0,))
    >>> e.q_hat.shape, float(e.sigma[0, 0]) == 1e-6
    ((2,), True)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pickllm.cascade.answers import Answer, agree
from pickllm.errors import ConfigError, StateError
from pickllm.types import SeedLike

__all__ = [
    "NOISE_LEVELS",
    "Estimates",
    "LearnedEstimator",
    "NoisyOracle",
    "OfflineEstimator",
    "PostHocModel",
    "TokenCostModel",
    "posthoc_features",
]

NOISE_LEVELS: dict[str, tuple[float, float]] = {
    "low": (0.6, 0.3),
    "medium": (1.6, 0.8),
    "high": (2.4, 1.2),
}
"""The paper's quality noise (sigma ex-ante, sigma post-hoc) per level."""

COST_NOISE_LEVELS: dict[str, tuple[float, float]] = {
    "low": (2e-4, 5e-5),
    "medium": (4e-4, 1e-4),
    "high": (100.0, 100.0),
}
"""The paper's cost noise (sigma ex-ante, sigma post-hoc) per level, in USD."""

RUN_VARIANCE = 1e-6
"""Variance of a run model's estimate (the paper's)."""


@dataclass(frozen=True, slots=True)
class Estimates:
    """What a cascade knows about one query at one step.

    Args:
        q_hat: ``(k,)`` quality estimates.
        sigma: ``(k, k)`` covariance of the estimates, or None (no uncertainty).
        c_hat: ``(k,)`` cost estimates.
    """

    q_hat: np.ndarray
    sigma: np.ndarray | None
    c_hat: np.ndarray


class OfflineEstimator(Protocol):
    """Estimates for the rows of a recorded table, given the models run so far."""

    def estimate(self, row: int, run: tuple[int, ...]) -> Estimates:
        """Estimates for ``row`` after running ``run`` (post-hoc for those)."""
        ...


def _calibrate(noisy: np.ndarray, truth: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per column, the least-squares line from ``noisy`` to ``truth`` fitted on ``rows``."""
    out = np.empty_like(noisy)
    for j in range(noisy.shape[1]):
        x, y = noisy[rows, j], truth[rows, j]
        slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(y.mean()))
        out[:, j] = slope * noisy[:, j] + intercept
    return out


@dataclass(frozen=True, slots=True)
class NoisyOracle:
    """The paper's noisy-oracle estimators (see the module docstring).

    Build with :meth:`fit`.

    Args:
        ante: ``(n, k)`` calibrated ex-ante quality estimates.
        post: ``(n, k)`` calibrated post-hoc quality estimates.
        variance: ``(k,)`` variance of an unrun model's estimate.
        cost_ante: ``(n, k)`` calibrated ex-ante cost estimates.
        cost: ``(n, k)`` actual cost (a run model's cost).
    """

    ante: np.ndarray
    post: np.ndarray
    variance: np.ndarray
    cost_ante: np.ndarray
    cost: np.ndarray

    @classmethod
    def fit(
        cls,
        quality: np.ndarray,
        cost: np.ndarray,
        *,
        ante: float,
        post: float,
        fit_rows: np.ndarray,
        cost_noise: tuple[float, float] = (0.0, 0.0),
        seed: SeedLike = None,
    ) -> NoisyOracle:
        """Noisy estimates of every row; calibration and variances fitted on ``fit_rows``.

        Args:
            quality: ``(n, k)`` true quality.
            cost: ``(n, k)`` true cost.
            ante: sigma of the ex-ante quality noise.
            post: sigma of the post-hoc quality noise (the paper: half of ``ante``).
            fit_rows: training rows for the calibration and the uncertainty.
            cost_noise: sigmas of the ex-ante and post-hoc cost noise.
            seed: the noise's generator.

        Raises:
            ConfigError: a negative sigma.
        """
        for label, value in (
            ("ante", ante),
            ("post", post),
            *zip(("cost_noise",) * 2, cost_noise, strict=False),
        ):
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                msg = f"{label} must be a finite number >= 0, got {value!r}"
                raise ConfigError(msg)
        rng = np.random.default_rng(seed)
        q = np.asarray(quality, dtype=float)
        c = np.asarray(cost, dtype=float)
        rows = np.asarray(fit_rows, dtype=np.intp)
        q_ante = _calibrate(q + rng.normal(0.0, ante, q.shape), q, rows)
        q_post = _calibrate(q + rng.normal(0.0, post, q.shape), q, rows)
        c_ante = _calibrate(c + rng.normal(0.0, cost_noise[0], c.shape), c, rows)
        variance = np.var(q_ante[rows] - q_post[rows], axis=0)
        return cls(ante=q_ante, post=q_post, variance=variance, cost_ante=c_ante, cost=c)

    def estimate(self, row: int, run: tuple[int, ...]) -> Estimates:
        """Ex-ante for the unrun models, post-hoc (variance 1e-6, actual cost) for ``run``."""
        q = self.ante[row].copy()
        var = self.variance.copy()
        c = self.cost_ante[row].copy()
        if run:
            idx = list(run)
            q[idx] = self.post[row, idx]
            var[idx] = RUN_VARIANCE
            c[idx] = self.cost[row, idx]
        return Estimates(q_hat=q, sigma=np.diag(var), c_hat=c)


# --------------------------------------------------------------------- post-hoc model
_BASE_FEATURES = (
    "bias",
    "logit_ante",
    "extracted",
    "empty",
    "parses",
    "defines",
    "has_others",
    "agree_share",
    "agree_count",
    "disagree_count",
    "agree_weight",
)


def _logit(p: np.ndarray | float) -> np.ndarray:
    x = np.clip(np.asarray(p, dtype=float), 1e-3, 1 - 1e-3)
    out: np.ndarray = np.log(x / (1 - x))
    return out


def posthoc_features(
    model: int,
    answers: Sequence[Answer | None],
    run: Sequence[int],
    ante: np.ndarray,
) -> np.ndarray:
    """The post-hoc features of ``model``'s answer given the answers of ``run``.

    ``answers[j]`` is model ``j``'s answer (None if not run); ``ante`` the ex-ante
    estimates. Features: bias, logit of the ex-ante estimate, whether an answer was
    extracted, blank, parses, defines a function, whether other answers are known, the
    share and count of other answers agreeing and disagreeing, and the summed logit
    ex-ante estimate of the agreeing models.
    """
    a = answers[model]
    if a is None:
        msg = f"model {model} has no answer"
        raise ConfigError(msg)
    others = [j for j in run if j != model and answers[j] is not None]
    agreeing = [j for j in others if agree(a, answers[j])]  # type: ignore[arg-type]
    n_other = len(others)
    return np.array(
        [
            1.0,
            float(_logit(ante[model])),
            float(a.key is not None),
            float(a.empty),
            float(a.parses),
            float(a.function is not None),
            float(n_other > 0),
            len(agreeing) / n_other if n_other else 0.0,
            float(len(agreeing)),
            float(n_other - len(agreeing)),
            float(_logit(ante[agreeing]).clip(-3, 3).sum()) if agreeing else 0.0,
        ]
    )


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method (the bias is not penalised)."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


class PostHocModel:
    """Post-hoc quality of an answer: a logistic regression per task on answer features.

    Args:
        l2: the L2 penalty of the weights.
        subsets_per_row: random run sets drawn per training row.
        max_run: largest run set drawn.
        seed: the draws' generator.

    Examples:
        >>> import numpy as np
        >>> from pickllm.cascade.answers import read_answer
        >>> rng = np.random.default_rng(0)
        >>> truth = (rng.random((60, 3)) < 0.6).astype(float)
        >>> answers = [[read_answer("A" if t else "B") for t in row] for row in truth]
        >>> ante = np.full((60, 3), 0.6)
        >>> m = PostHocModel(seed=0).fit(answers, ante, truth, ["t"] * 60)
        >>> right = m.predict(0, answers[0], (0, 1, 2), ante[0], "t")
        >>> bool(right > 0.5) == bool(truth[0, 0])
        True
    """

    def __init__(
        self,
        *,
        l2: float = 1.0,
        subsets_per_row: int = 4,
        max_run: int = 5,
        seed: SeedLike = None,
    ) -> None:
        if not (isinstance(l2, int | float) and l2 >= 0):
            msg = f"l2 must be a number >= 0, got {l2!r}"
            raise ConfigError(msg)
        if not (isinstance(subsets_per_row, int) and subsets_per_row >= 1):
            msg = f"subsets_per_row must be an int >= 1, got {subsets_per_row!r}"
            raise ConfigError(msg)
        if not (isinstance(max_run, int) and max_run >= 1):
            msg = f"max_run must be an int >= 1, got {max_run!r}"
            raise ConfigError(msg)
        self.l2 = l2
        self.subsets_per_row = subsets_per_row
        self.max_run = max_run
        self.seed = seed
        self._weights: dict[str, np.ndarray] = {}

    def fit(
        self,
        answers: Sequence[Sequence[Answer]],
        ante: np.ndarray,
        quality: np.ndarray,
        tasks: Sequence[str],
    ) -> PostHocModel:
        """Fit on rows of answers (every model's), ex-ante estimates and true quality.

        Each row contributes ``subsets_per_row`` random run sets (sizes 1 to
        ``max_run``); every member of a set is one example.
        """
        rng = np.random.default_rng(self.seed)
        n, k = np.shape(quality)
        feats: dict[str, list[np.ndarray]] = {}
        labels: dict[str, list[float]] = {}
        for i in range(n):
            row: list[Answer | None] = list(answers[i])
            for _ in range(self.subsets_per_row):
                size = int(rng.integers(1, min(self.max_run, k) + 1))
                run = tuple(int(j) for j in rng.choice(k, size=size, replace=False))
                for j in run:
                    feats.setdefault(tasks[i], []).append(posthoc_features(j, row, run, ante[i]))
                    labels.setdefault(tasks[i], []).append(float(quality[i, j] >= 0.5))
        every = np.vstack([f for fs in feats.values() for f in fs])
        every_y = np.array([y for ys in labels.values() for y in ys])
        self._weights = {"*": _fit_logistic(every, every_y, float(self.l2))}
        for task, fs in feats.items():
            self._weights[task] = _fit_logistic(np.vstack(fs), np.array(labels[task]), self.l2)
        return self

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return bool(self._weights)

    def predict(
        self,
        model: int,
        answers: Sequence[Answer | None],
        run: Sequence[int],
        ante: np.ndarray,
        task: str | None,
    ) -> float:
        """The post-hoc quality estimate of ``model``'s answer."""
        if not self._weights:
            msg = "PostHocModel.predict called before fit"
            raise StateError(msg)
        w = self._weights.get(task or "*", self._weights["*"])
        z = float(posthoc_features(model, answers, run, ante) @ w)
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def state(self) -> dict[str, Any]:
        """JSON-ready state (weights per task)."""
        return {
            "features": list(_BASE_FEATURES),
            "l2": self.l2,
            "weights": {t: w.tolist() for t, w in self._weights.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PostHocModel:
        """Rebuild from :meth:`state`.

        Raises:
            StateError: another feature list or malformed weights.
        """
        if state.get("features") != list(_BASE_FEATURES):
            msg = "post-hoc model state has another feature list"
            raise StateError(msg)
        model = cls(l2=float(state["l2"]))
        try:
            model._weights = {
                str(t): np.asarray(w, dtype=float) for t, w in dict(state["weights"]).items()
            }
        except (TypeError, ValueError) as exc:
            msg = f"malformed post-hoc weights: {exc}"
            raise StateError(msg) from exc
        if any(w.shape != (len(_BASE_FEATURES),) for w in model._weights.values()):
            msg = "post-hoc weights have the wrong length"
            raise StateError(msg)
        return model


# --------------------------------------------------------------------- costs
class TokenCostModel:
    """Ex-ante cost per model: ``a + b * prompt_tokens``, per model and task.

    Fitted by least squares on recorded costs: ``a`` is the predicted output part (the
    output length times the output price), ``b`` the input price. Unknown tasks use the
    model's fit over all tasks.

    Examples:
        >>> import numpy as np
        >>> tokens = np.array([10, 20, 30, 40])
        >>> cost = np.stack([1 + 0.1 * tokens, 2 + 0.2 * tokens], axis=1).astype(float)
        >>> m = TokenCostModel().fit(cost, tokens, ["t"] * 4)
        >>> m.predict(np.array([50]), ["t"]).round(3).tolist()
        [[6.0, 12.0]]
    """

    def __init__(self) -> None:
        self._coef: dict[str, np.ndarray] = {}

    def fit(self, cost: np.ndarray, tokens: np.ndarray, tasks: Sequence[str]) -> TokenCostModel:
        """Fit on ``(n, k)`` recorded costs and ``(n,)`` prompt tokens."""
        c = np.asarray(cost, dtype=float)
        t = np.asarray(tokens, dtype=float)
        groups = {"*": np.arange(c.shape[0])}
        task_arr = np.asarray(tasks, dtype=object)
        for task in sorted(set(task_arr.tolist())):
            groups[task] = np.flatnonzero(task_arr == task)
        for name, rows in groups.items():
            x = np.stack([np.ones(rows.size), t[rows]], axis=1)
            coef, *_ = np.linalg.lstsq(x, c[rows], rcond=None)
            self._coef[name] = np.maximum(coef, 0.0)  # (2, k)
        return self

    def predict(self, tokens: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """``(n, k)`` predicted cost."""
        t = np.asarray(tokens, dtype=float)
        rows = [self._coef.get(task, self._coef["*"]) for task in tasks]
        coef = np.stack(rows)  # (n, 2, k)
        out: np.ndarray = coef[:, 0, :] + t[:, None] * coef[:, 1, :]
        return out

    def state(self) -> dict[str, Any]:
        """JSON-ready coefficients."""
        return {t: c.tolist() for t, c in self._coef.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TokenCostModel:
        """Rebuild from :meth:`state`."""
        model = cls()
        model._coef = {str(t): np.asarray(c, dtype=float) for t, c in state.items()}
        return model


# --------------------------------------------------------------------- learned
def residual_covariance(
    quality: np.ndarray, ante: np.ndarray, tasks: Sequence[str], *, shrink: float = 0.1
) -> dict[str, np.ndarray]:
    """Covariance of ``quality - ante`` per task (and ``"*"`` overall), shrunk to its diagonal."""
    r = np.asarray(quality, dtype=float) - np.asarray(ante, dtype=float)
    task_arr = np.asarray(tasks, dtype=object)
    out: dict[str, np.ndarray] = {}
    groups = {"*": np.arange(r.shape[0])}
    for task in sorted(set(task_arr.tolist())):
        groups[task] = np.flatnonzero(task_arr == task)
    for name, rows in groups.items():
        cov = np.cov(r[rows], rowvar=False) if rows.size > 1 else np.eye(r.shape[1]) * 0.25
        out[name] = (1 - shrink) * cov + shrink * np.diag(np.diagonal(cov))
    return out


@dataclass(frozen=True, slots=True)
class LearnedEstimator:
    """Learned ex-ante and post-hoc estimates for the rows of a recorded table.

    Args:
        ante: ``(n, k)`` ex-ante quality predictions (a trained scorer's).
        cost_ante: ``(n, k)`` ex-ante cost predictions.
        cost: ``(n, k)`` actual costs.
        answers: per row, every model's :class:`~pickllm.cascade.answers.Answer`.
        tasks: per row, the task.
        posthoc: the post-hoc model.
        covariance: residual covariance of the ex-ante estimates per task.
        post_variance: variance of the post-hoc estimates' error (the Gaussian update's
            measurement noise).
        cost_model: the model that gave ``cost_ante``, if any (saved with the rest).
    """

    ante: np.ndarray
    cost_ante: np.ndarray
    cost: np.ndarray
    answers: Sequence[Sequence[Answer]]
    tasks: Sequence[str]
    posthoc: PostHocModel
    covariance: dict[str, np.ndarray]
    post_variance: float
    cost_model: TokenCostModel | None = None

    def estimate(self, row: int, run: tuple[int, ...]) -> Estimates:
        """Post-hoc for ``run``, ex-ante conditioned on them for the others."""
        ante = self.ante[row]
        task = self.tasks[row]
        sigma = self.covariance.get(task, self.covariance["*"])
        c = self.cost_ante[row].copy()
        if not run:
            return Estimates(q_hat=ante.copy(), sigma=sigma, c_hat=c)
        answers: list[Answer | None] = [None] * ante.shape[0]
        for j in run:
            answers[j] = self.answers[row][j]
        post = np.array([self.posthoc.predict(j, answers, run, ante, task) for j in run])
        return _condition(
            ante,
            sigma,
            run,
            post,
            post_variance=self.post_variance,
            c_ante=c,
            c_actual=self.cost[row],
        )


def _condition(
    ante: np.ndarray,
    sigma: np.ndarray,
    run: tuple[int, ...],
    post: np.ndarray,
    *,
    post_variance: float,
    c_ante: np.ndarray,
    c_actual: np.ndarray,
) -> Estimates:
    """Gaussian update of the unrun models on the run models' post-hoc estimates."""
    k = ante.shape[0]
    r = np.asarray(run, dtype=np.intp)
    u = np.setdiff1d(np.arange(k), r)
    q = ante.copy()
    q[r] = post
    out_sigma = np.zeros((k, k))
    out_sigma[r, r] = RUN_VARIANCE
    if u.size:
        s_rr = sigma[np.ix_(r, r)] + post_variance * np.eye(r.size)
        s_ur = sigma[np.ix_(u, r)]
        gain = np.linalg.solve(s_rr, s_ur.T).T  # (|u|, |r|)
        q[u] = np.clip(ante[u] + gain @ (post - ante[r]), 0.0, 1.0)
        cond = sigma[np.ix_(u, u)] - gain @ s_ur.T
        out_sigma[np.ix_(u, u)] = (cond + cond.T) / 2
    c = c_ante.copy()
    c[r] = c_actual[r]
    return Estimates(q_hat=q, sigma=out_sigma, c_hat=c)


# --------------------------------------------------------------------- persistence
ESTIMATOR_FILE = "cascade_estimator.json"
ESTIMATOR_FORMAT = "pickllm-cascade-estimator"


def save_estimator_state(
    path: str | os.PathLike[str],
    *,
    posthoc: PostHocModel,
    covariance: dict[str, np.ndarray],
    post_variance: float,
    cost_model: TokenCostModel | None,
    models: Sequence[str],
) -> Path:
    """Write the trained cascade estimator's parts as JSON into the directory ``path``.

    Written to a temporary name and renamed into place.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "format": ESTIMATOR_FORMAT,
        "version": 1,
        "models": list(models),
        "posthoc": posthoc.state(),
        "covariance": {t: c.tolist() for t, c in covariance.items()},
        "post_variance": post_variance,
        "cost_model": None if cost_model is None else cost_model.state(),
    }
    target = directory / ESTIMATOR_FILE
    tmp = directory / (ESTIMATOR_FILE + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(target)
    return target


def load_estimator_state(
    path: str | os.PathLike[str],
) -> tuple[PostHocModel, dict[str, np.ndarray], float, TokenCostModel | None, tuple[str, ...]]:
    """Read what :func:`save_estimator_state` wrote.

    Raises:
        StateError: missing, another format, or malformed.
    """
    file = Path(path) / ESTIMATOR_FILE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"{Path(path)} holds no {ESTIMATOR_FILE}"
        raise StateError(msg) from exc
    except json.JSONDecodeError as exc:
        msg = f"{file} is not valid JSON: {exc}"
        raise StateError(msg) from exc
    if not isinstance(state, dict) or state.get("format") != ESTIMATOR_FORMAT:
        msg = f"{file} is not a {ESTIMATOR_FORMAT} file"
        raise StateError(msg)
    try:
        models = tuple(str(m) for m in state["models"])
        k = len(models)
        covariance = {str(t): np.asarray(c, dtype=float) for t, c in state["covariance"].items()}
        if any(c.shape != (k, k) for c in covariance.values()):
            msg = f"{file}: covariance shapes do not match {k} models"
            raise StateError(msg)
        cost_state = state["cost_model"]
        cost_model = None if cost_state is None else TokenCostModel.from_state(cost_state)
        return (
            PostHocModel.from_state(state["posthoc"]),
            covariance,
            float(state["post_variance"]),
            cost_model,
            models,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = f"{file} is malformed: {exc}"
        raise StateError(msg) from exc
