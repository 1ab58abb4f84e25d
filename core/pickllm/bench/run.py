"""Benchmark harness: replay recorded LLM outcomes through routers and baselines.

:func:`run_bench` takes an :class:`~pickllm.data.OutcomeTable`, splits it into train and
test rows (by the ``split`` column or by a ``fold``), and evaluates on the test rows:

* **Baselines** (always): every single model; ``random_model`` (a uniformly random model
  per query, in expectation); ``best_single`` and ``best_per_task`` (the most accurate
  model overall and per task, chosen on the train rows, cheaper first on ties);
  ``convex_hull`` (RouterBench's "linear" baseline: random mixtures of the single models on
  their convex Pareto front); ``oracle`` (per query the best model, the cheapest among
  equals).
* **Offline routers** (:class:`~pickllm.registry.OfflineRouter`, registered in
  :data:`~pickllm.registry.OFFLINE_ROUTERS`): fitted
  on the train rows; they predict quality and cost per (query, model), and the cost-aware
  rule of :mod:`pickllm.costaware` is fitted on the train predictions for a grid of budgets
  (the cascade-routing paper's grid between the single models' mean test costs, see
  :func:`~pickllm.costaware.pareto_budgets`). Each budget gives one test operating point,
  taken in expectation over the tie mixing.
* **Online policies** (every :class:`~pickllm.policies.Policy`, built by name): the test
  prompts are streamed in ``seeds`` seeded random orders (the same orders for every
  policy); at each step the policy picks a model, gets the reward of the recorded outcome
  and learns from it. The context key is the prompt's task.

Metrics (:mod:`pickllm.metrics`): accuracy (mean quality), mean cost per query, mean
latency, mean reward under the objective; for every method its quality-cost curve (one
point for methods without a cost knob) gives AUC x100 over ``[c_min, c_max]`` (the
cheapest and most expensive single models' mean test costs), APGR and CPT(50%)/CPT(80%)
(as % of the cost range) against the cheapest and the best single model on the test rows,
and the cost per query to reach 95% and 100% of the best single model's accuracy. Online
policies also get cumulative regret against the best fixed model in hindsight and against
the per-query oracle (both reward-based), the step at which they settled
(:func:`~pickllm.metrics.settle_step`) and whether they settled on the best fixed model.

Reward: :class:`~pickllm.Objective` weights on quality, cost and latency. The data has
dollars per call but no per-token prices for most models, so unless the objective sets
``cost_scale`` the harness sets it to the most expensive model's mean cost per query on the
train rows (that model's typical call costs the full cost penalty). Latency is the table's
own when recorded, else simulated (:mod:`pickllm.latency`) and labelled so.

Offline routers' reward is taken at ``lam = w_cost / (w_quality * cost_scale)``, the
cost-quality exchange rate the objective implies (latency is not predicted).

The same ``seed`` gives the same numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from pickllm import metrics, registry
from pickllm.bench.cascade import cascade_bench
from pickllm.bench.report import BenchReport, Kind, MethodResult, OnlineStats
from pickllm.costaware import evaluate_fit, lambda_sweep, pareto_budgets, route_by_lambda
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError
from pickllm.latency import LatencyModel, latency_matrix
from pickllm.objective import Objective
from pickllm.policies.base import Policy
from pickllm.registry import PolicySetup
from pickllm.types import Candidate, Context, Decision, Feedback

__all__ = [
    "DEFAULT_OFFLINE_ROUTERS",
    "DEFAULT_ONLINE_POLICIES",
    "SETTLE_SHARE",
    "SETTLE_WINDOW",
    "ProgressCallback",
    "StreamRows",
    "check_policy_params",
    "resolve_methods",
    "run_bench",
    "split_rows",
]

SplitColumn = Literal["split", "fold"]
StreamRows = Literal["test", "all", "train"]
ProgressCallback = Callable[[str, int, int], None]
"""``progress(label, done, total)``, called after each unit of work."""

DEFAULT_OFFLINE_ROUTERS: tuple[str, ...] = ("per_task", "selectllm", "zooter")
"""Offline routers benchmarked by default; the other registered ones run on request."""


SETTLE_WINDOW = 50
"""Window of :func:`~pickllm.metrics.settle_step` (a quarter of the stream if shorter)."""

SETTLE_SHARE = 0.8
"""Share of a window the settled model must take."""

DEFAULT_ONLINE_POLICIES: tuple[str, ...] = (
    "learning_automaton",
    "epsilon_greedy_q",
    "ucb1",
    "thompson",
    "fixed",
    "random",
    "cheapest",
    "per_context",
    "linear_thompson",
    "lin_ucb",
)
"""Online policies benchmarked by default (those that are registered)."""


# --------------------------------------------------------------------------- setup
def split_rows(
    table: OutcomeTable,
    *,
    split_column: SplitColumn = "split",
    test_split: str | int = "test",
) -> tuple[np.ndarray, np.ndarray, str]:
    """Train rows, test rows and a label, from a split name or a fold number.

    With ``split_column="split"`` the test rows are those whose split is ``test_split``;
    with ``"fold"`` those whose fold is ``int(test_split)``. Every other row is a train row.

    Raises:
        ConfigError: unknown column, split or fold (the message lists those available), or
            an empty train or test set.
    """
    if split_column == "split":
        test = table.rows(split=str(test_split))
        label = f"split={test_split}"
    elif split_column == "fold":
        try:
            fold = int(test_split)
        except (TypeError, ValueError):
            msg = (
                "with split column 'fold', the test split must be a fold number, "
                f"got {test_split!r}"
            )
            raise ConfigError(msg) from None
        test = table.rows(fold=fold)
        label = f"fold={fold}"
    else:
        msg = f"unknown split column {split_column!r}; available: split, fold"
        raise ConfigError(msg)
    mask = np.ones(table.n_prompts, dtype=bool)
    mask[test] = False
    train = np.flatnonzero(mask)
    if train.size == 0:
        msg = f"{table.name}: no train rows left when testing on {label}"
        raise ConfigError(msg)
    return train, test, label


def resolve_methods(policies: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Split method names into ``(offline routers, online policies)``.

    None gives the :data:`DEFAULT_OFFLINE_ROUTERS` and :data:`DEFAULT_ONLINE_POLICIES`.
    Online names are matched like ``make_policy`` does (case and ``-``/``_`` insensitive).

    Raises:
        ConfigError: an unknown name (the message lists every available one).
    """
    known = registry.available_methods()
    if policies is None:
        online = [p for p in DEFAULT_ONLINE_POLICIES if p in known["online"]]
        return [p for p in DEFAULT_OFFLINE_ROUTERS if p in registry.OFFLINE_ROUTERS], online
    offline: list[str] = []
    online = []
    for raw in policies:
        name = raw.strip()
        if not name:
            continue
        if name in registry.OFFLINE_ROUTERS:
            offline.append(name)
        elif name in known["online"]:
            online.append(name)
        else:
            key = name.lower().replace("-", "_")
            if key in known["online"]:
                online.append(key)
                continue
            msg = (
                f"unknown policy {name!r}; online policies: "
                f"{', '.join(known['online']) or 'none'}; "
                f"offline routers: {', '.join(known['offline'])}"
            )
            raise ConfigError(msg)
    return list(dict.fromkeys(offline)), list(dict.fromkeys(online))


def check_policy_params(
    params: Mapping[str, Mapping[str, Any]], online: Sequence[str], *, option: str = "policy_params"
) -> dict[str, dict[str, Any]]:
    """``params`` (policy name -> hyperparameter -> value) checked against ``online``.

    Names are matched like ``make_policy`` does (case and ``-``/``_`` insensitive); the
    result is keyed by the online names as :func:`resolve_methods` gives them.

    Raises:
        ConfigError: a policy that is not among ``online``, a hyperparameter the policy
            does not have (the message lists the allowed ones) or a value it refuses; the
            message names ``option``.
    """
    out: dict[str, dict[str, Any]] = {}
    for raw, values in params.items():
        name = raw.strip().lower().replace("-", "_")
        if name not in online:
            msg = (
                f"{option}: {raw!r} is not among the online policies run "
                f"({', '.join(online) or 'none'})"
            )
            raise ConfigError(msg)
        allowed = _hyperparameters(name)
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            msg = (
                f"{option}: policy {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )
            raise ConfigError(msg)
        out.setdefault(name, {}).update(values)
    for name, values in out.items():
        if name in registry.ONLINE_FACTORIES:
            continue  # built from the data: its values are checked when it is built
        try:
            registry.make_policy(name, seed=0, **values)
        except ConfigError as exc:
            msg = f"{option}: policy {name!r}: {exc}"
            raise ConfigError(msg) from exc
    return out


def _hyperparameters(name: str) -> list[str]:
    """The keyword arguments of the policy class ``name`` but its seed (none if no class)."""
    try:
        cls = registry.policy_class(name)
    except ConfigError:
        return []  # a registered factory without a policy class of that name
    return [p for p in inspect.signature(cls.__init__).parameters if p not in {"self", "seed"}]


@dataclass(frozen=True, slots=True, kw_only=True)
class _TestSet:
    """Outcomes of the test rows and the reference figures every metric uses."""

    quality: np.ndarray  # (m, k)
    cost: np.ndarray  # (m, k); zeros when unavailable
    latency: np.ndarray  # (m, k)
    reward: np.ndarray  # (m, k)
    cost_available: bool
    c_min: float
    c_max: float
    q_floor: float
    q_weak: float
    q_strong: float

    def result(
        self,
        name: str,
        kind: Kind,
        *,
        accuracy: float,
        mean_cost: float,
        mean_latency: float | None,
        mean_reward: float | None,
        points: Sequence[tuple[float, float]],
        detail: str = "",
        online: OnlineStats | None = None,
    ) -> MethodResult:
        """A result whose curve metrics come from ``points`` (if cost is available)."""
        if not self.cost_available:
            return MethodResult(
                name=name,
                kind=kind,
                accuracy=accuracy,
                mean_cost=None,
                mean_latency=mean_latency,
                mean_reward=mean_reward,
                detail=detail,
                online=online,
            )
        costs = [p[0] for p in points]
        quals = [p[1] for p in points]
        lo = {"c_min": self.c_min, "q_floor": self.q_floor}
        band = {**lo, "c_max": self.c_max, "q_weak": self.q_weak, "q_strong": self.q_strong}
        cpt50 = metrics.cpt(costs, quals, 0.5, **band)
        cpt80 = metrics.cpt(costs, quals, 0.8, **band)
        return MethodResult(
            name=name,
            kind=kind,
            accuracy=accuracy,
            mean_cost=mean_cost,
            mean_latency=mean_latency,
            mean_reward=mean_reward,
            auc=100.0 * metrics.quality_cost_auc(costs, quals, c_max=self.c_max, **lo),
            apgr=metrics.apgr(costs, quals, **band),
            cpt50=None if cpt50 is None else 100.0 * cpt50,
            cpt80=None if cpt80 is None else 100.0 * cpt80,
            cost_to_95=metrics.cost_to_reach(costs, quals, 0.95 * self.q_strong, **lo),
            cost_to_100=metrics.cost_to_reach(costs, quals, self.q_strong, **lo),
            points=tuple(points),
            detail=detail,
            online=online,
        )

    def choice_result(
        self, name: str, kind: Kind, choice: np.ndarray, detail: str = ""
    ) -> MethodResult:
        """Result of picking model ``choice[i]`` for test row ``i``."""
        rows = np.arange(choice.shape[0])
        acc = float(self.quality[rows, choice].mean())
        cost = float(self.cost[rows, choice].mean())
        return self.result(
            name,
            kind,
            accuracy=acc,
            mean_cost=cost,
            mean_latency=float(self.latency[rows, choice].mean()),
            mean_reward=float(self.reward[rows, choice].mean()),
            points=[(cost, acc)],
            detail=detail,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Setup:
    """Everything the evaluation of one method needs."""

    table: OutcomeTable
    train: np.ndarray
    test: np.ndarray
    split_label: str
    cost: np.ndarray  # (n, k) full table; zeros when unavailable
    objective: Objective
    simulated: bool
    notes: tuple[str, ...]
    ts: _TestSet
    best_train: int  # column of the best single model on the train rows
    cheapest: int  # column of the cheapest single model on the test rows
    best: int  # column of the best single model on the test rows


def _rewards(
    objective: Objective, quality: np.ndarray, cost: np.ndarray, latency: np.ndarray
) -> np.ndarray:
    out = np.empty(quality.shape)
    for i, j in np.ndindex(*quality.shape):
        out[i, j] = objective.reward(
            Feedback(
                latency_s=float(latency[i, j]),
                cost_usd=float(cost[i, j]),
                quality=float(quality[i, j]),
            )
        )
    return out


def _best_by_quality(quality: np.ndarray, cost: np.ndarray) -> int:
    """Column with the highest mean quality, the cheaper among equals."""
    order = np.lexsort((cost.mean(axis=0), -quality.mean(axis=0)))
    return int(order[0])


def _objective_for(
    table: OutcomeTable, train: np.ndarray, objective: Objective | None
) -> tuple[Objective, list[str]]:
    """The objective with a cost scale fitting the data, and what was decided."""
    objective = objective or Objective()
    notes: list[str] = []
    if table.cost is None:
        notes.append(
            "cost unavailable: some models have neither a recorded cost nor a price; cost "
            "metrics are not reported and the objective's cost weight is ignored"
        )
        if objective.cost:
            if objective.quality == 0 and objective.latency == 0:
                msg = (
                    "the objective weighs only cost, but the data has no cost "
                    "(pass a price table or --price-file)"
                )
                raise ConfigError(msg)
            objective = replace(objective, cost=0.0)
        return objective, notes
    if objective.cost_scale is None:
        scale = float(table.cost[train].mean(axis=0).max())
        if scale > 0:
            objective = replace(objective, cost_scale=scale)
            notes.append(
                f"reward cost term: cost / {scale:.6g} USD (the most expensive model's mean "
                "cost per query on the train rows), capped at 1"
            )
    if table.cost_estimated:
        notes.append("cost is estimated from list prices and token estimates, not recorded")
    return objective, notes


def _setup(
    table: OutcomeTable,
    *,
    objective: Objective | None,
    split_column: SplitColumn,
    test_split: str | int,
    seed: int,
    latency_model: LatencyModel | None,
    stream: StreamRows = "test",
) -> _Setup:
    train, test, label = split_rows(table, split_column=split_column, test_split=test_split)
    objective, notes = _objective_for(table, train, objective)
    if stream == "all":
        test = np.arange(table.n_prompts)
        label = f"the whole data set (train rows of {label} still fit the offline routers)"
        notes.append(
            "every prompt is streamed: offline routers are scored on rows that include "
            "their own training rows (compare the online policies and the baselines)"
        )
    elif stream == "train":
        test = train
        label = f"the train rows of {label} (for tuning; offline routers see their own rows)"
    elif stream != "test":
        msg = f"stream must be 'test', 'all' or 'train', got {stream!r}"
        raise ConfigError(msg)
    cost = table.cost if table.cost is not None else np.zeros(table.quality.shape)
    rng = np.random.default_rng([seed, 7])
    latency, simulated = latency_matrix(table, model=latency_model, seed=rng)
    if simulated:
        lm = latency_model or LatencyModel()
        notes.append(
            f"latency is simulated: lognormal per model, median {lm.base_s:g} s x "
            f"(mean cost / cheapest mean cost)^{lm.exponent:g}, sigma {lm.sigma:g}"
        )
    q_test, c_test, l_test = table.quality[test], cost[test], latency[test]
    acc_k, cost_k = q_test.mean(axis=0), c_test.mean(axis=0)
    cheapest = int(np.lexsort((-acc_k, cost_k))[0])
    best = _best_by_quality(q_test, c_test)
    ts = _TestSet(
        quality=q_test,
        cost=c_test,
        latency=l_test,
        reward=_rewards(objective, q_test, c_test, l_test),
        cost_available=table.cost is not None,
        c_min=float(cost_k.min()),
        c_max=float(cost_k.max()),
        q_floor=float(acc_k.min()),
        q_weak=float(acc_k[cheapest]),
        q_strong=float(acc_k[best]),
    )
    return _Setup(
        table=table,
        train=train,
        test=test,
        split_label=label,
        cost=cost,
        objective=objective,
        simulated=simulated,
        notes=tuple(notes),
        ts=ts,
        best_train=_best_by_quality(table.quality[train], cost[train]),
        cheapest=cheapest,
        best=best,
    )


# --------------------------------------------------------------------------- run
def run_bench(
    table: OutcomeTable,
    *,
    policies: Sequence[str] | None = None,
    objective: Objective | None = None,
    split_column: SplitColumn = "split",
    test_split: str | int = "test",
    seeds: int = 5,
    seed: int = 0,
    latency_model: LatencyModel | None = None,
    budgets_per_segment: int = 10,
    progress: ProgressCallback | None = None,
    cascade: bool = False,
    noise: bool = False,
    stream: StreamRows = "test",
    policy_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> BenchReport:
    """Evaluate baselines, offline routers and online policies on ``table``'s test rows.

    Args:
        table: the recorded outcomes.
        policies: online policy and offline router names; None runs the default offline routers
            and the registered :data:`DEFAULT_ONLINE_POLICIES`. Baselines always run.
        objective: reward weights; default ``Objective()``. Without ``cost_scale`` the
            harness sets it (see the module docstring).
        split_column: ``"split"`` or ``"fold"``.
        test_split: the split name or fold number of the test rows.
        seeds: streams (random orders) per online policy, ``>= 1``.
        seed: base seed of the orders, the policies and the simulated latency.
        latency_model: the latency simulation when the table has none.
        budgets_per_segment: budgets per segment of the offline sweep, ``>= 2``.
        progress: called after each offline router and each online stream.
        stream: the rows evaluated and streamed: ``"test"`` (the test rows), ``"all"``
            (every prompt of the data set: longer online streams; offline routers, still
            fitted on the train rows, are then scored partly on their training rows) or
            ``"train"`` (the train rows, to choose hyperparameters without looking at
            the test rows). The report's ``split`` says which.
        cascade: add the cascade strategies' rows with learned estimators
            (:mod:`pickllm.bench.cascade`).
        noise: add the cascade-routing paper's noisy-oracle table (as notes).
        policy_params: hyperparameters of online policies, ``{name: {param: value}}``
            (e.g. ``{"thompson": {"prior_alpha": 2.0}}``); the others keep their defaults.
            Checked by :func:`check_policy_params`.

    Raises:
        ConfigError: unknown policy, split, fold or column, or bad arguments.

    Examples:
        >>> from pickllm.data import load_outcomes
        >>> report = run_bench(load_outcomes("routerbench_subset"), policies=[])
        >>> round(100 * report.results["oracle"].accuracy, 2)
        97.57
    """
    if not (isinstance(seeds, int) and seeds >= 1):
        msg = f"seeds must be an int >= 1, got {seeds!r}"
        raise ConfigError(msg)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        msg = f"seed must be an int >= 0, got {seed!r}"
        raise ConfigError(msg)
    if not (isinstance(budgets_per_segment, int) and budgets_per_segment >= 2):
        msg = f"budgets_per_segment must be an int >= 2, got {budgets_per_segment!r}"
        raise ConfigError(msg)
    offline_names, online_names = resolve_methods(policies)
    params = check_policy_params(policy_params or {}, online_names)
    setup = _setup(
        table,
        objective=objective,
        split_column=split_column,
        test_split=test_split,
        seed=seed,
        latency_model=latency_model,
        stream=stream,
    )
    results = _baselines(setup)
    total = len(offline_names) + len(online_names) * seeds
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(label, done, total)

    for name in offline_names:
        results[_unique(name, results)] = _offline_result(name, setup, budgets_per_segment)
        tick(name)
    if online_names:
        streams = _Streams.build(setup, seeds=seeds, seed=seed)
        for name in online_names:
            results[_unique(name, results)] = _online_result(
                name, setup, streams, tick, params.get(name, {})
            )
    ts = setup.ts
    cost_ok = ts.cost_available
    notes = (
        *setup.notes,
        *_params_note(online_names, params),
        *_price_prior_note(online_names, params, setup.objective),
    )
    if (cascade or noise) and cost_ok:
        notes = _add_cascades(
            setup,
            results,
            budgets_per_segment,
            cascade=cascade,
            noise=noise,
            seed=seed,
            progress=None if progress is None else (lambda label: progress(label, done, total)),
        )
    reference: dict[str, float | str | None] = {
        "c_min": ts.c_min if cost_ok else None,
        "c_max": ts.c_max if cost_ok else None,
        "q_floor": ts.q_floor,
        "cheapest_model": table.models[setup.cheapest] if cost_ok else None,
        "q_cheapest": ts.q_weak if cost_ok else None,
        "best_model": table.models[setup.best],
        "q_best": ts.q_strong,
    }
    cost_label: Literal["recorded", "estimated", "unavailable"] = (
        "unavailable" if not cost_ok else "estimated" if table.cost_estimated else "recorded"
    )
    return BenchReport(
        data=table.name,
        models=table.models,
        split=setup.split_label,
        n_train=int(setup.train.shape[0]),
        n_test=int(setup.test.shape[0]),
        cost_label=cost_label,
        latency_label="simulated" if setup.simulated else "recorded",
        objective=setup.objective,
        seed=seed,
        seeds=seeds,
        reference=reference,
        results=results,
        notes=notes,
    )


def _add_cascades(
    setup: _Setup,
    results: dict[str, MethodResult],
    per_segment: int,
    *,
    cascade: bool,
    noise: bool,
    seed: int,
    progress: Callable[[str], None] | None,
) -> tuple[str, ...]:
    """Add the cascade rows to ``results``; the notes with the noise table and timings."""
    ts = setup.ts
    budgets = pareto_budgets(ts.cost.mean(axis=0), ts.quality.mean(axis=0), per_segment=per_segment)
    extra = cascade_bench(
        setup.table,
        setup.train,
        setup.test,
        budgets=budgets,
        result=ts.result,
        learned=cascade,
        noise=noise,
        seed=seed,
        progress=progress,
    )
    for name, row in extra.rows.items():
        results[_unique(name, results)] = row
    return (*setup.notes, *extra.notes, *extra.lines())


def _unique(name: str, results: Mapping[str, MethodResult]) -> str:
    # A policy may share its name with a model or a baseline: keep both.
    return name if name not in results else f"{name} (policy)"


def _baselines(setup: _Setup) -> dict[str, MethodResult]:
    table, ts = setup.table, setup.ts
    m = setup.test.shape[0]
    acc_k, cost_k = ts.quality.mean(axis=0), ts.cost.mean(axis=0)
    results: dict[str, MethodResult] = {}
    for j in np.argsort(cost_k, kind="stable").tolist():
        results[table.models[j]] = ts.choice_result(table.models[j], "model", np.full(m, j))
    acc, cost = float(ts.quality.mean()), float(ts.cost.mean())
    results["random_model"] = ts.result(
        "random_model",
        "baseline",
        accuracy=acc,
        mean_cost=cost,
        mean_latency=float(ts.latency.mean()),
        mean_reward=float(ts.reward.mean()),
        points=[(cost, acc)],
        detail="a uniformly random model per query (in expectation)",
    )
    results["best_single"] = ts.choice_result(
        "best_single",
        "baseline",
        np.full(m, setup.best_train),
        detail=table.models[setup.best_train],
    )
    per_task, task_choice = _best_per_task(setup)
    results["best_per_task"] = ts.choice_result(
        "best_per_task",
        "baseline",
        per_task,
        detail=", ".join(f"{task}: {table.models[j]}" for task, j in task_choice.items()),
    )
    if ts.cost_available:
        hull = metrics.convex_hull(cost_k, acc_k).tolist()
        results["convex_hull"] = ts.result(
            "convex_hull",
            "baseline",
            accuracy=float(acc_k[hull[-1]]),
            mean_cost=float(cost_k[hull[-1]]),
            mean_latency=None,
            mean_reward=None,
            points=[(float(cost_k[j]), float(acc_k[j])) for j in hull],
            detail=" -> ".join(table.models[j] for j in hull),
        )
    top = ts.quality.max(axis=1, keepdims=True)
    oracle = np.where(ts.quality >= top, ts.cost, np.inf).argmin(axis=1)
    results["oracle"] = ts.choice_result(
        "oracle", "baseline", oracle, detail="the best model per query, the cheapest on ties"
    )
    return results


def _best_per_task(setup: _Setup) -> tuple[np.ndarray, dict[str, int]]:
    """Per test row, the best train model of its task (the best single for unseen tasks)."""
    table, train = setup.table, setup.train
    tasks = np.asarray(table.tasks, dtype=object)
    choice: dict[str, int] = {}
    for task in sorted(set(tasks[train].tolist())):
        rows = train[tasks[train] == task]
        choice[task] = _best_by_quality(table.quality[rows], setup.cost[rows])
    test_tasks = [table.tasks[i] for i in setup.test.tolist()]
    picks = np.array([choice.get(t, setup.best_train) for t in test_tasks], dtype=np.intp)
    return picks, {t: choice.get(t, setup.best_train) for t in sorted(set(test_tasks))}


def _offline_result(name: str, setup: _Setup, per_segment: int) -> MethodResult:
    table, ts, objective = setup.table, setup.ts, setup.objective
    router = registry.OFFLINE_ROUTERS[name]()
    router.fit(table, setup.train)
    qh_train, ch_train = router.predict(table, setup.train)
    qh_test, ch_test = router.predict(table, setup.test)
    k = table.n_models
    for label, arr, n in (
        ("train q_hat", qh_train, setup.train.size),
        ("train c_hat", ch_train, setup.train.size),
        ("test q_hat", qh_test, setup.test.size),
        ("test c_hat", ch_test, setup.test.size),
    ):
        if np.shape(arr) != (n, k):
            msg = f"offline router {name!r}: {label} has shape {np.shape(arr)}, not {(n, k)}"
            raise ConfigError(msg)
    rows = np.arange(setup.test.size)
    top = route_by_lambda(qh_test, ch_test, 0.0)
    acc = float(ts.quality[rows, top].mean())
    cost = float(ts.cost[rows, top].mean())
    if objective.quality > 0 and objective.cost_scale:
        lam = objective.cost / (objective.quality * objective.cost_scale)
        pick = route_by_lambda(qh_test, ch_test, lam)
    elif objective.quality > 0:
        pick = top
    else:
        pick = np.asarray(ch_test).argmin(axis=1)
    points = [(cost, acc)]
    if ts.cost_available:
        acc_k, cost_k = ts.quality.mean(axis=0), ts.cost.mean(axis=0)
        budgets = pareto_budgets(cost_k, acc_k, per_segment=per_segment)
        for fit in lambda_sweep(qh_train, ch_train, budgets):
            q, c = evaluate_fit(fit, qh_test, ch_test, ts.quality, ts.cost)
            points.append((c, q))
    points.sort()
    return ts.result(
        name,
        "offline",
        accuracy=acc,
        mean_cost=cost,
        mean_latency=float(ts.latency[rows, top].mean()),
        mean_reward=float(ts.reward[rows, pick].mean()),
        points=points,
        detail=f"{len(points)} operating points" if ts.cost_available else "quality only",
    )


def _stream_contexts(setup: _Setup) -> list[Context]:
    """The context of every streamed prompt (``setup.test``), offering the whole pool."""
    table = setup.table
    cands = _candidates(table, setup.train, setup.cost)
    return [
        Context(
            query=table.prompts[i],
            key=table.tasks[i],
            candidates=cands,
            input_tokens=int(table.input_tokens[i]),
        )
        for i in setup.test.tolist()
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Streams:
    """The test prompts as contexts, and the orders and policy seeds of every stream."""

    contexts: tuple[Context, ...]
    orders: tuple[np.ndarray, ...]
    policy_seeds: tuple[int, ...]

    @classmethod
    def build(cls, setup: _Setup, *, seeds: int, seed: int) -> _Streams:
        contexts = tuple(_stream_contexts(setup))
        m = len(contexts)
        # Every policy sees the same orders and the same seeds: differences between
        # policies are then not differences of luck.
        return cls(
            contexts=contexts,
            orders=tuple(np.random.default_rng([seed, s]).permutation(m) for s in range(seeds)),
            policy_seeds=tuple(
                int(np.random.SeedSequence([seed, s, 1]).generate_state(1)[0]) for s in range(seeds)
            ),
        )


def _candidates(table: OutcomeTable, train: np.ndarray, cost: np.ndarray) -> tuple[Candidate, ...]:
    """Candidates priced so that price order is the models' mean-cost order.

    The data records dollars per call, not per token: each model's price (input and output
    alike) is its mean train cost per call over the mean prompt tokens, in USD per 1M.
    Policies that look at prices (``cheapest``, tie-breaks) then rank models as the data does.
    """
    tokens = max(float(table.input_tokens[train].mean()), 1.0)
    prices = cost[train].mean(axis=0) / tokens * 1e6
    return tuple(
        Candidate(name=model, input_price=float(prices[j]), output_price=float(prices[j]))
        for j, model in enumerate(table.models)
    )


def _with_price_prior(
    name: str, objective: Objective, params: Mapping[str, Any]
) -> Mapping[str, Any]:
    """A linear contextual policy's ``price_prior`` from the objective, unless given.

    The rule: the objective's cost share ``cost / (quality + cost + latency)``. With the
    bench's ``cost_scale`` (the dearest model's mean cost per call) the dearest model's
    reward is lower by about that much on cost alone, and the cost term is linear in
    price in between, which is what ``price_prior`` encodes. A policy built by a
    registered factory (a warm start, for example) is left as its factory made it.
    """
    if name in registry.ONLINE_FACTORIES or "price_prior" in params:
        return params
    try:
        cls = registry.policy_class(name)
    except ConfigError:
        return params
    total = objective.quality + objective.cost + objective.latency
    if "price_prior" not in inspect.signature(cls).parameters or total <= 0:
        return params
    return {**params, "price_prior": round(objective.cost / total, 3)}


def _params_note(names: Sequence[str], params: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """The report's note on the hyperparameters given to the online policies, if any."""
    given = [
        f"{name} " + ", ".join(f"{key}={value!r}" for key, value in params[name].items())
        for name in names
        if params.get(name)
    ]
    return (f"policy parameters given: {'; '.join(given)}",) if given else ()


def _price_prior_note(
    names: Sequence[str], params: Mapping[str, Mapping[str, Any]], objective: Objective
) -> tuple[str, ...]:
    """The report's note on the policies given :func:`_with_price_prior`'s rule, if any."""
    ruled = [n for n in names if "price_prior" not in params.get(n, {})]
    ruled = [n for n in ruled if "price_prior" in _with_price_prior(n, objective, {})]
    if not ruled:
        return ()
    share = _with_price_prior(ruled[0], objective, {})["price_prior"]
    note = (
        f"{', '.join(ruled)}: price_prior={share:g}, the objective's cost share (the "
        "dearest model's reward is that much lower on cost alone), unless given"
    )
    return (note,)


def _build_policy(name: str, setup: PolicySetup, params: Mapping[str, Any]) -> Policy:
    factory = registry.ONLINE_FACTORIES.get(name)
    if factory is not None:
        policy = factory(setup)
        return policy.clone(**params) if params else policy
    return registry.make_policy(name, seed=setup.seed, **params)


@dataclass(slots=True)
class _Stream:
    """What one policy did on one stream."""

    chosen: np.ndarray
    reward: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray


def _play(policy: Policy, setup: _Setup, streams: _Streams, order: np.ndarray) -> _Stream:
    ts = setup.ts
    column = {model: j for j, model in enumerate(setup.table.models)}
    steps = order.shape[0]
    out = _Stream(
        chosen=np.empty(steps, dtype=np.intp),
        reward=np.empty(steps),
        quality=np.empty(steps),
        cost=np.empty(steps),
        latency=np.empty(steps),
    )
    for t, i in enumerate(order.tolist()):
        decision = policy.select(streams.contexts[i])
        j = column[decision.candidate.name]
        out.chosen[t] = j
        if len(decision.members) > 1:
            outcome = _plan_outcome(decision, column, ts, setup.objective, i)
        else:
            outcome = (ts.reward[i, j], ts.quality[i, j], ts.cost[i, j], ts.latency[i, j])
        out.reward[t], out.quality[t], out.cost[t], out.latency[t] = outcome
        policy.update(decision, float(out.reward[t]))
    return out


def _online_result(
    name: str,
    setup: _Setup,
    streams: _Streams,
    tick: Callable[[str], None],
    params: Mapping[str, Any],
) -> MethodResult:
    table, ts = setup.table, setup.ts
    best_fixed = metrics.best_fixed_arm(ts.reward)
    base = PolicySetup(
        seed=0, table=table, train=setup.train, best_single=table.models[setup.best_train]
    )
    params = _with_price_prior(name, setup.objective, params)
    played: list[_Stream] = []
    n_streams = len(streams.orders)
    for s, order in enumerate(streams.orders):
        policy = _build_policy(name, replace(base, seed=streams.policy_seeds[s]), params)
        played.append(_play(policy, setup, streams, order))
        tick(f"{name} (stream {s + 1}/{n_streams})")
    # One row per stream: cumulative regrets and the running mean reward, step by step.
    regret_fixed = np.array(
        [
            metrics.cumulative_regret(p.reward, ts.reward[o], against="best_fixed")
            for p, o in zip(played, streams.orders, strict=True)
        ]
    )
    regret_oracle = np.array(
        [
            metrics.cumulative_regret(p.reward, ts.reward[o], against="oracle")
            for p, o in zip(played, streams.orders, strict=True)
        ]
    )
    running = np.array([np.cumsum(p.reward) / np.arange(1, len(p.reward) + 1) for p in played])
    curve_fixed = regret_fixed.mean(axis=0)
    curve_oracle = regret_oracle.mean(axis=0)
    steps = len(streams.contexts)
    window = min(SETTLE_WINDOW, max(1, steps // 4))
    settles = [metrics.settle_step(p.chosen, window=window, share=SETTLE_SHARE) for p in played]
    rewards = [float(p.reward.mean()) for p in played]
    totals = [float(p.cost.sum()) for p in played]
    stats = OnlineStats(
        seeds=n_streams,
        steps=steps,
        reward_std=float(np.std(rewards)),
        total_cost=float(np.mean(totals)) if ts.cost_available else None,
        regret_best_fixed=float(curve_fixed[-1]) if steps else 0.0,
        regret_oracle=float(curve_oracle[-1]) if steps else 0.0,
        regret_curve_best_fixed=tuple(float(v) for v in curve_fixed),
        regret_curve_oracle=tuple(float(v) for v in curve_oracle),
        reward_curve=_floats(running.mean(axis=0)),
        reward_curve_std=_floats(running.std(axis=0)),
        regret_std_best_fixed=_floats(regret_fixed.std(axis=0)),
        regret_std_oracle=_floats(regret_oracle.std(axis=0)),
        best_fixed_model=table.models[best_fixed],
        settle_steps=tuple(st.step for st in settles),
        settled_models=tuple(None if st.arm is None else table.models[st.arm] for st in settles),
        settled_on_best=sum(1 for st in settles if st.arm == best_fixed),
    )
    acc = float(np.mean([p.quality.mean() for p in played]))
    mean_cost = float(np.mean(totals)) / max(steps, 1)
    return ts.result(
        name,
        "online",
        accuracy=acc,
        mean_cost=mean_cost,
        mean_latency=float(np.mean([p.latency.mean() for p in played])),
        mean_reward=float(np.mean(rewards)),
        points=[(mean_cost, acc)],
        online=stats,
    )


def _plan_outcome(
    decision: Decision, column: Mapping[str, int], ts: _TestSet, objective: Objective, i: int
) -> tuple[float, float, float, float]:
    """Reward, quality, cost and latency of a multi-model plan on test row ``i``.

    Every member runs (an upper bound on a cascade's cost); the best member's answer
    counts; latency adds up for a cascade and is the slowest member's for an ensemble.
    """
    cols = [column[c.name] for c in decision.members]
    quality = float(ts.quality[i, cols].max())
    cost = float(ts.cost[i, cols].sum())
    lat = ts.latency[i, cols]
    latency = float(lat.sum() if decision.kind == "cascade" else lat.max())
    reward = objective.reward(Feedback(latency_s=latency, cost_usd=cost, quality=quality))
    return reward, quality, cost, latency


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
