"""Warm start: a contextual policy initialised from a trained query scorer, then online.

Run: ``python benchmarks/warm_start.py [--data routerbench_subset] [--seeds 5]
[--rows test|train]``. Trains Zooter (the ``zooter`` configuration of ``pickllm bench``) on
the train rows, turns its predicted quality into a predicted reward per train prompt and
model (the objective's quality share times the prediction, plus the model's mean train
reward from cost and latency), warm-starts ``LinearThompson`` and ``LinUCB`` with them
(:meth:`~pickllm.policies.linear.LinearPolicy.warm_start`) and streams the test rows
beside the cold policies and the offline scorer. Two warm starts:

* ``*_warm``: the heads over the structural features (and the task key) learn the
  scorer's predictions on the train prompts;
* ``*_warm_scored``: the scorer's predicted reward of every model is appended to the
  features, so each head can copy its model's prediction exactly and online rewards
  recalibrate it (the scorer is the feature extractor, the bandit the calibrator).

``--rows train`` runs the same on the train rows alone (:func:`pickllm.bench.tuning.
tuning_table`: folds 0 and 1 of the train rows streamed, the other train rows to fit
on), to choose between the variants without looking at the test rows.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from pickllm import make_policy
from pickllm.bench import PolicySetup, register_online_policy, render_report, run_bench
from pickllm.bench.run import _candidates, _setup
from pickllm.bench.tuning import tuning_table
from pickllm.data import OutcomeTable, load_outcomes
from pickllm.learn import Zooter
from pickllm.policies import LinearThompson, LinUCB, Policy
from pickllm.policies.linear import LinearPolicy
from pickllm.types import Context


@functools.cache
def _table(data: str, rows: str) -> OutcomeTable:
    table = load_outcomes(data)
    return tuning_table(table) if rows == "train" else table


@functools.cache
def _predicted(
    data: str, rows: str
) -> tuple[tuple[Context, ...], np.ndarray, tuple[str, ...], dict[str, np.ndarray]]:
    """Warm-start contexts and predicted rewards, and every prompt's predicted rewards."""
    table = _table(data, rows)
    setup = _setup(
        table,
        objective=None,
        split_column="split",
        test_split="test",
        seed=0,
        latency_model=None,
        stream="train",
    )
    train = setup.train
    texts = [table.prompts[i] for i in train.tolist()]
    tags = [table.tasks[i] for i in train.tolist()]
    scorer = Zooter(tag_beta=0.0, seed=0).fit(texts, table.quality[train], table.models, tags=tags)
    obj = setup.objective
    share = obj.quality / (obj.quality + obj.cost + obj.latency)
    # The rest of the reward (cost and latency terms) per model, from the train rows.
    rest = (setup.ts.reward - share * setup.ts.quality).mean(axis=0)
    every = list(table.prompts)
    predicted_all = np.clip(share * scorer.predict_quality(every) + rest, 0.0, 1.0)
    by_query = dict(zip(every, predicted_all, strict=True))
    predicted = predicted_all[train]
    cands = _candidates(table, train, setup.cost)
    contexts = tuple(
        Context(query=t, key=k, candidates=cands) for t, k in zip(texts, tags, strict=True)
    )
    return contexts, predicted, table.models, by_query


def _scored(
    base: type[LinUCB | LinearThompson], by_query: dict[str, np.ndarray]
) -> type[LinUCB | LinearThompson]:
    """``base`` with the scorer's predicted rewards appended to its features."""

    class Scored(base):  # type: ignore[valid-type,misc]  # a class chosen at run time
        def _context_features(self, context: Context) -> np.ndarray:
            x = super()._context_features(context)
            return np.concatenate((x, by_query[context.query]))

    return Scored


@functools.cache
def _prior(data: str, rows: str) -> Callable[[Context], dict[str, float]]:
    """The scorer's predicted reward per model of a context's query, as a reward prior."""
    _, _, models, by_query = _predicted(data, rows)
    table = {q: dict(zip(models, p.tolist(), strict=True)) for q, p in by_query.items()}

    def prior(context: Context) -> dict[str, float]:
        return table[context.query]

    return prior


def warm(
    name: str,
    data: str,
    rows: str,
    *,
    scored: bool = False,
    weight: float = 1.0,
    prior: bool = False,
    params: dict[str, Any] | None = None,
) -> object:
    """A factory of ``name`` warm-started from the scorer (``weight`` 0: no pseudo-rewards).

    ``prior``: the scorer's predictions are the heads' prior mean (``set_prior``) before
    the warm start, so the pseudo-rewards (equal to the prior) only add confidence.
    """

    def build(setup: PolicySetup) -> Policy:
        contexts, predicted, models, by_query = _predicted(data, rows)
        if scored:
            base: type[LinUCB | LinearThompson] = LinUCB if name == "lin_ucb" else LinearThompson
            policy: Policy = _scored(base, by_query)(seed=setup.seed, **(params or {}))
        else:
            policy = make_policy(name, seed=setup.seed, **(params or {}))
        if not isinstance(policy, LinearPolicy):
            msg = f"{name} is not a linear contextual policy"
            raise TypeError(msg)
        if prior:
            policy.set_prior(_prior(data, rows))
        if weight > 0:
            policy.warm_start(contexts, predicted, models, weight=weight)
        return policy

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="routerbench_subset")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", default="test", choices=("test", "train"))
    parser.add_argument("--weight", type=float, default=1.0, help="of a pseudo-observation")
    parser.add_argument("--warm-only", action="store_true", help="no cold policies")
    parser.add_argument(
        "--variants",
        default="warm,warm_scored,warm_prior",
        help="comma-separated warm starts to run: warm, warm_scored, warm_prior",
    )
    parser.add_argument(
        "--prior-weight",
        type=float,
        default=0.0,
        help="warm_prior's pseudo-observation weight (0: the prior alone, no warm start)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="POLICY.NAME=VALUE",
        help="a hyperparameter of the warm policies (linear_thompson.exploration=0.05)",
    )
    args = parser.parse_args(argv)
    params: dict[str, dict[str, Any]] = {"linear_thompson": {}, "lin_ucb": {}}
    for raw in args.param:
        key, _, value = raw.partition("=")
        policy_name, _, param = key.partition(".")
        params[policy_name][param] = float(value)
    names = ["zooter"] if args.warm_only else ["zooter", "linear_thompson", "lin_ucb"]
    variants = args.variants.split(",")
    for name in ("linear_thompson", "lin_ucb"):
        for suffix in variants:
            factory = warm(
                name,
                args.data,
                args.rows,
                scored=suffix == "warm_scored",
                prior=suffix == "warm_prior",
                weight=args.prior_weight if suffix == "warm_prior" else args.weight,
                params=params[name],
            )
            register_online_policy(f"{name}_{suffix}", factory)  # type: ignore[arg-type]
            names.append(f"{name}_{suffix}")
    report = run_bench(_table(args.data, args.rows), policies=names, seeds=args.seeds)
    print(render_report(report), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
