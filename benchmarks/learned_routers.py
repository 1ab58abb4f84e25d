"""Learned routers (SelectLLM, Zooter) on the bundled outcome data: the issue #6 numbers.

Run: ``.venv/bin/python benchmarks/learned_routers.py [--part all|auc|accuracy|subsets]``.

1. ``auc``: ``routerbench_subset`` (its train/test split) through ``pickllm bench``'s
   harness: quality-cost AUC x100 and the cost to reach 95% of GPT-4's accuracy (as a share
   of GPT-4's cost), for the baselines and every learned configuration.
2. ``accuracy``: ``llmrouter_9llm`` (fold 0 as test, folds 1-4 train): accuracy of the
   quality-only route, with no task labels, with task labels for training only (label
   enhancement) and with task labels as features.
3. ``subsets``: SelectLLM with subsets on the multiple-choice tasks of
   ``routerbench_subset`` (ARC-Challenge, Winogrande): real answer extraction from the
   recorded responses and voting; accuracy, model calls, cost and simulated latency (the
   slowest member) against every model voting, the best single model and the best fixed
   subset of the same size.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np

from pickllm.bench import register_offline_router, run_bench
from pickllm.data import OutcomeTable, load_outcomes
from pickllm.latency import latency_matrix
from pickllm.learn import (
    LearnedOffline,
    QueryScorer,
    SelectLLM,
    Vote,
    Zooter,
    select_subset,
)
from pickllm.learn.offline import table_fit_args

GPT4 = "gpt-4-1106-preview"

# name -> (factory, how task labels are used). Routers average 5 learners by default.
CONFIGS: dict[str, tuple[Callable[[], QueryScorer], str]] = {
    "selectllm": (lambda: SelectLLM(seed=0), "none"),
    "selectllm_single": (lambda: SelectLLM(ensemble=1, seed=0), "none"),
    "selectllm_logistic": (lambda: SelectLLM(learner="logistic", seed=0), "none"),
    "selectllm_cf": (lambda: SelectLLM(calibration="cross_fit", seed=0), "none"),
    "zooter_notags": (lambda: Zooter(tag_beta=1.0, seed=0), "none"),
    "selectllm_tagsmooth": (lambda: SelectLLM(tag_beta=0.0, seed=0), "training"),
    "selectllm_tagsmooth_seed1": (lambda: SelectLLM(tag_beta=0.0, seed=1), "training"),
    "selectllm_tagsmooth_b03": (lambda: SelectLLM(tag_beta=0.3, seed=0), "training"),
    "zooter": (lambda: Zooter(tag_beta=0.0, seed=0), "training"),
    "zooter_seed1": (lambda: Zooter(tag_beta=0.0, seed=1), "training"),
    "zooter_seed2": (lambda: Zooter(tag_beta=0.0, seed=2), "training"),
    "zooter_t03": (lambda: Zooter(tag_beta=0.0, temperature=0.3, seed=0), "training"),
    "zooter_cf": (lambda: Zooter(tag_beta=0.0, calibration="cross_fit", seed=0), "training"),
    "zooter_paper": (lambda: Zooter(tag_beta=0.3, seed=0), "training"),
    "selectllm_tags": (lambda: SelectLLM(tags_as_features=True, seed=0), "features"),
    "zooter_tags": (lambda: Zooter(tags_as_features=True, seed=0), "features"),
}


def _adapter(name: str) -> Callable[[], LearnedOffline]:
    make = CONFIGS[name][0]
    return lambda: LearnedOffline(name, make)


def _register(names: Sequence[str]) -> None:
    for name in names:
        register_offline_router(name, _adapter(name))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def part_auc() -> None:
    table = load_outcomes("routerbench_subset")
    names = list(CONFIGS)
    _register(names)
    t0 = time.perf_counter()
    report = run_bench(table, policies=["per_task", *names])
    elapsed = time.perf_counter() - t0
    gpt_cost = report.results[GPT4].mean_cost or float("nan")
    rows = []
    for name in [GPT4, "best_single", "convex_hull", "per_task", "oracle", *names]:
        r = report.results[name]
        c95 = "-" if r.cost_to_95 is None else f"{100 * r.cost_to_95 / gpt_cost:.1f}%"
        tags = CONFIGS[name][1] if name in CONFIGS else "-"
        auc = "-" if r.auc is None else f"{r.auc:.2f}"
        rows.append([name, tags, auc, c95, f"{100 * r.accuracy:.2f}"])
    print("routerbench_subset, split=test (945 prompts), 11 models")
    print(
        _table(
            ["method", "task labels", "AUC x100", "cost to 95% GPT-4 acc", "quality-only acc %"],
            rows,
        )
    )
    print(f"(bench run: {elapsed:.0f} s)\n")


def part_accuracy() -> None:
    table = load_outcomes("llmrouter_9llm")
    names = list(CONFIGS)
    _register(names)
    report = run_bench(table, policies=["per_task", *names], split_column="fold", test_split=0)
    rows = []
    for name in ["best_single", "best_per_task", "oracle", *names]:
        r = report.results[name]
        tags = (
            CONFIGS[name][1]
            if name in CONFIGS
            else ("features" if name == "best_per_task" else "-")
        )
        rows.append([name, tags, f"{100 * r.accuracy:.2f}"])
    print("llmrouter_9llm, fold 0 as test, folds 1-4 as train: quality-only routing")
    print(_table(["method", "task labels", "accuracy %"], rows))
    print()


def _mc_rows(table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
    mc = {"arc-challenge", "winogrande"}
    return np.array([i for i in rows.tolist() if table.tasks[i] in mc], dtype=np.intp)


def _evaluate(
    table: OutcomeTable,
    *,
    test: np.ndarray,
    latency: np.ndarray,
    subsets: Sequence[Sequence[int]],
    vote: Vote,
    weights: np.ndarray | None,
) -> list[float]:
    """Accuracy %, calls, cost and slowest-member latency per query of voting subsets."""
    if table.responses is None or table.cost is None:  # pragma: no cover - checked by caller
        msg = "needs responses and cost"
        raise RuntimeError(msg)
    correct, calls, spend, slowest = [], [], [], []
    for r, (i, members) in enumerate(zip(test.tolist(), subsets, strict=True)):
        answers = [table.responses[i][j] for j in members]
        w = None if weights is None else [float(weights[r, j]) for j in members]
        # The recorded quality of the member whose extracted answer won the vote.
        winner = members[vote.vote(answers, w).index]
        correct.append(table.quality[i, winner])
        calls.append(len(members))
        spend.append(float(table.cost[i, list(members)].sum()))
        slowest.append(float(latency[i, list(members)].max()))
    return [
        100 * float(np.mean(correct)),
        float(np.mean(calls)),
        float(np.mean(spend)),
        float(np.mean(slowest)),
    ]


def _subset_block(table: OutcomeTable, pool: Sequence[int], label: str) -> None:
    train = _mc_rows(table, table.rows(split="train"))
    test = _mc_rows(table, table.rows(split="test"))
    args = table_fit_args(table, train)
    cols = list(pool)
    router = SelectLLM(extractor="choice", seed=0)
    t0 = time.perf_counter()
    router.fit(
        args["texts"],
        args["quality"][:, cols],
        [table.models[j] for j in cols],
        cost=None if args["cost"] is None else args["cost"][:, cols],
        input_tokens=args["input_tokens"],
    )
    fit_s = time.perf_counter() - t0
    latency, _simulated = latency_matrix(table, seed=np.random.default_rng([0, 7]))
    conf = router.confidence([table.prompts[i] for i in test.tolist()])
    key = router.order_key()
    q_train = table.quality[train][:, cols].mean(axis=0)
    by_train = [cols[j] for j in np.argsort(-q_train, kind="stable")]
    m = len(test)

    def run(subsets: Sequence[Sequence[int]], vote: Vote, w: np.ndarray | None) -> list[float]:
        return _evaluate(table, test=test, latency=latency, subsets=subsets, vote=vote, weights=w)

    majority = Vote(extractor="choice", mode="majority")
    weighted = Vote(extractor="choice", mode="weighted")
    best = by_train[0]
    results: list[tuple[str, list[float]]] = [
        (f"best single on train ({table.models[best]})", run([[best]] * m, majority, None)),
        (f"all {len(cols)} models, majority vote", run([by_train] * m, majority, None)),
    ]
    for n in (3, 5):
        top_n = run([by_train[:n]] * m, majority, None)
        results.append((f"top-{n} on train, majority vote", top_n))
    full_conf = np.zeros((m, table.n_models))
    full_conf[:, cols] = conf
    for n in (1, 2, 3, 5):
        for policy in ("max_conf", "labelled_max_conf", "weighted_max_conf"):
            if n == 1 and policy != "max_conf":
                continue
            subsets = [
                [cols[j] for j in select_subset(row, n, policy=policy, order_key=key)]
                for row in conf
            ]
            if policy == "weighted_max_conf":
                outcome = run(subsets, weighted, full_conf)
            else:
                outcome = run(subsets, majority, None)
            results.append((f"SelectLLM {policy}, n<={n}", outcome))
    oracle = float(np.mean(table.quality[test][:, cols].max(axis=1))) * 100
    ref = results[0][1]
    rows = [
        [
            name,
            f"{acc:.2f}",
            f"{calls:.2f}",
            f"{1e3 * spend:.3f}",
            f"{100 * spend / ref[2]:.0f}%",
            f"{lat:.2f}",
        ]
        for name, (acc, calls, spend, lat) in results
    ]
    print(
        f"{label}: {len(train)} train / {len(test)} test prompts (classifier trained in "
        f"{fit_s:.1f} s); any-model oracle {oracle:.2f}%"
    )
    header = ["method", "accuracy %", "calls/query", "cost m$/query", "vs best single", "latency s"]
    print(_table(header, rows))
    print()


def part_subsets() -> None:
    table = load_outcomes("routerbench_subset")
    if table.responses is None or table.cost is None:
        msg = "routerbench_subset needs responses and cost"
        raise RuntimeError(msg)
    print(
        "SelectLLM subsets on the multiple-choice tasks of routerbench_subset (ARC-Challenge, "
        "Winogrande): answers extracted from the recorded responses (choice letters) and "
        "voted; latency is simulated (pickllm.latency, seed 0) and a subset's is its "
        "slowest member's (members run concurrently)."
    )
    print()
    _subset_block(table, range(table.n_models), "All 11 models")
    dear = {"gpt-4-1106-preview", "claude-v1", "claude-v2"}
    cheap = [j for j, m in enumerate(table.models) if m not in dear]
    _subset_block(table, cheap, "The 8 cheaper models (without GPT-4, Claude v1, Claude v2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "auc", "accuracy", "subsets"], default="all")
    ns = parser.parse_args()
    if ns.part in ("all", "auc"):
        part_auc()
    if ns.part in ("all", "accuracy"):
        part_accuracy()
    if ns.part in ("all", "subsets"):
        part_subsets()


if __name__ == "__main__":
    main()
