"""Zooter's tag-smoothing weight: beta 0 against the paper's 0.3, fitted on train, scored on test.

Run: ``python benchmarks/zooter_beta.py [--validate]``. Both bundled data sets, through
``pickllm bench``'s harness (``routerbench_subset``: its train/test split; ``llmrouter_9llm``:
fold 0 as test, folds 1-4 as train), task labels used for training only (label
enhancement), two seeds each. Prints the quality-only accuracy, the quality-cost AUC x100
and the mean reward under the default objective of each configuration.

``--validate`` never touches the test rows: it keeps the train rows only and holds one of
their folds out (``routerbench_subset``: train fold 0; ``llmrouter_9llm``: fold 1), fitting
on the other train folds. The default is chosen on that run; the test run only reports.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from pickllm.bench import register_offline_router, run_bench
from pickllm.data import load_outcomes
from pickllm.learn import LearnedOffline, Zooter


def _adapter(name: str, beta: float, seed: int) -> Callable[[], LearnedOffline]:
    return lambda: LearnedOffline(name, lambda: Zooter(tag_beta=beta, seed=seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--validate", action="store_true", help="hold out a train fold")
    args = parser.parse_args()
    names = []
    for beta in (0.0, 0.3):
        for seed in range(args.seeds):
            name = f"zooter_beta{beta:g}_seed{seed}"
            register_offline_router(name, _adapter(name, beta, seed))
            names.append(name)
    setups: dict[str, tuple[str, str | None, int, str, str | int]] = {
        "routerbench_subset (test split)": ("routerbench_subset", "train", 0, "split", "test"),
        "llmrouter_9llm (fold 0 test)": ("llmrouter_9llm", None, 0, "fold", 0),
    }
    for title, (data, train_split, exclude, split_column, split) in setups.items():
        table = load_outcomes(data)
        label, column, test_split = title, split_column, split
        if args.validate:
            # Train rows only; one of their folds held out.
            keep = np.array(
                [
                    (s == train_split) if train_split is not None else (f != exclude)
                    for s, f in zip(table.splits, table.folds.tolist(), strict=True)
                ]
            )
            table = table.subset(np.flatnonzero(keep))
            held = 0 if train_split is not None else 1
            label = f"{data} (validation: train fold {held} held out, no test rows)"
            column, test_split = "fold", held
        report = run_bench(
            table,
            policies=names,
            split_column=column,  # type: ignore[arg-type]
            test_split=test_split,
        )
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
