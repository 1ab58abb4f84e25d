"""Zooter's tag-smoothing weight: beta 0 against the paper's 0.3, fitted on train, scored on test.

Run: ``python benchmarks/zooter_beta.py``. Both bundled data sets, through ``pickllm
bench``'s harness (``routerbench_subset``: its train/test split; ``llmrouter_9llm``: fold 0
as test, folds 1-4 as train), task labels used for training only (label enhancement), two
seeds each. Prints the quality-only accuracy, the quality-cost AUC x100 and the mean reward
under the default objective of each configuration. Nothing is tuned on the test rows: this
only compares two fixed values.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pickllm.bench import register_offline_router, run_bench
from pickllm.data import load_outcomes
from pickllm.learn import LearnedOffline, Zooter


def _adapter(name: str, beta: float, seed: int) -> Callable[[], LearnedOffline]:
    return lambda: LearnedOffline(name, lambda: Zooter(tag_beta=beta, seed=seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    names = []
    for beta in (0.0, 0.3):
        for seed in range(args.seeds):
            name = f"zooter_beta{beta:g}_seed{seed}"
            register_offline_router(name, _adapter(name, beta, seed))
            names.append(name)
    setups = {
        "routerbench_subset (test split)": ("routerbench_subset", {}),
        "llmrouter_9llm (fold 0 test)": (
            "llmrouter_9llm",
            {"split_column": "fold", "test_split": 0},
        ),
    }
    for label, (data, split) in setups.items():
        report = run_bench(load_outcomes(data), policies=names, **split)  # type: ignore[arg-type]
        print(label)
        print(f"{'config':<26} {'accuracy %':>10} {'AUC x100':>9} {'mean reward':>11}")
        for name in names:
            r = report.results[name]
            auc = "-" if r.auc is None else f"{r.auc:.2f}"
            reward = "-" if r.mean_reward is None else f"{r.mean_reward:.4f}"
            print(f"{name:<26} {100 * r.accuracy:>10.2f} {auc:>9} {reward:>11}")
        print()


if __name__ == "__main__":
    main()
