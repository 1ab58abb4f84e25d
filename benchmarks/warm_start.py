"""Warm start: a contextual policy initialised from a trained query scorer, then online.

Run: ``python benchmarks/warm_start.py [--data routerbench_subset] [--seeds 5]``. Trains
Zooter (the ``zooter`` configuration of ``pickllm bench``) on the train rows, turns its
predicted quality into a predicted reward per train prompt and model (the objective's
quality share times the prediction, plus the model's mean train reward from cost and
latency), warm-starts ``LinearThompson`` and ``LinUCB`` with them
(:meth:`~pickllm.policies.linear.LinearPolicy.warm_start`) and streams the test rows
beside the cold policies and the offline scorer.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np

from pickllm import make_policy
from pickllm.bench import PolicySetup, register_online_policy, render_report, run_bench
from pickllm.bench.run import _candidates, _setup
from pickllm.data import load_outcomes
from pickllm.learn import Zooter
from pickllm.policies import Policy
from pickllm.policies.linear import LinearPolicy
from pickllm.types import Context


@functools.cache
def _predicted(data: str) -> tuple[tuple[Context, ...], np.ndarray, tuple[str, ...]]:
    table = load_outcomes(data)
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
    predicted = np.clip(share * scorer.predict_quality(texts) + rest, 0.0, 1.0)
    cands = _candidates(table, train, setup.cost)
    contexts = tuple(
        Context(query=t, key=k, candidates=cands) for t, k in zip(texts, tags, strict=True)
    )
    return contexts, predicted, table.models


def warm(name: str, data: str) -> object:
    def build(setup: PolicySetup) -> Policy:
        policy = make_policy(name, seed=setup.seed)
        if not isinstance(policy, LinearPolicy):
            msg = f"{name} is not a linear contextual policy"
            raise TypeError(msg)
        contexts, predicted, models = _predicted(data)
        policy.warm_start(contexts, predicted, models, weight=1.0)
        return policy

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="routerbench_subset")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    for name in ("linear_thompson", "lin_ucb"):
        register_online_policy(f"{name}_warm", warm(name, args.data))  # type: ignore[arg-type]
    report = run_bench(
        load_outcomes(args.data),
        policies=["zooter", "linear_thompson", "lin_ucb", "linear_thompson_warm", "lin_ucb_warm"],
        seeds=args.seeds,
    )
    print(render_report(report), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
