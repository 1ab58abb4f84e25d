"""Training time of the learned routers on 5,000 prompts x 11 models (issue #6: < 30 s).

Run: ``.venv/bin/python benchmarks/train_speed.py [--repeats 3]``.

The data: the 3,150 ``routerbench_subset`` prompts (long 5-shot prompts, 11 real model
columns) and the first 1,850 ``llmrouter_9llm`` prompts (their 9 model columns plus two
of them again with 10% of the outcomes flipped, to make 11 columns), with real costs where
recorded and estimated ones otherwise. Timed: everything ``fit`` does, featurizing
included (hashing, IDF, randomized SVD, training, calibration, cost model), wall clock on
this machine. Prints the median of ``--repeats`` runs per configuration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from pickllm.data import load_outcomes
from pickllm.learn import HashedNgramFeaturizer, QueryScorer, SelectLLM, Zooter

N_PROMPTS = 5000
N_MODELS = 11


def build_data() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rb = load_outcomes("routerbench_subset")
    lr = load_outcomes("llmrouter_9llm")
    if rb.cost is None or lr.cost is None:
        msg = "bundled tables should have cost"
        raise RuntimeError(msg)
    extra = N_PROMPTS - rb.n_prompts
    rng = np.random.default_rng(0)
    lq = lr.quality[:extra]
    flipped = np.abs(lq[:, :2] - (rng.random((extra, 2)) < 0.1))
    lq11 = np.hstack([lq, flipped])
    lc11 = np.hstack([lr.cost[:extra], lr.cost[:extra, :2]])
    texts = list(rb.prompts) + list(lr.prompts[:extra])
    quality = np.vstack([rb.quality, lq11])
    cost = np.vstack([rb.cost, lc11])
    tokens = np.concatenate([rb.input_tokens, lr.input_tokens[:extra]])
    tags = list(rb.tasks) + list(lr.tasks[:extra])
    return texts, quality, cost, tokens, tags


CONFIGS: dict[str, Callable[[], QueryScorer]] = {
    "SelectLLM (default: MLP x5, SVD-256 features)": lambda: SelectLLM(seed=0),
    "SelectLLM (one MLP)": lambda: SelectLLM(ensemble=1, seed=0),
    "SelectLLM (logistic x5)": lambda: SelectLLM(learner="logistic", seed=0),
    "SelectLLM (MLP x5, cross-fitted calibration, 5 folds)": lambda: SelectLLM(
        calibration="cross_fit", seed=0
    ),
    "SelectLLM (logistic x1, raw 16k hashed features)": lambda: SelectLLM(
        learner="logistic", ensemble=1, featurizer=HashedNgramFeaturizer(), seed=0
    ),
    "Zooter (default: MLP x5, beta=0 on task tags)": lambda: Zooter(seed=0),
    "Zooter (MLP x5, cross-fitted calibration)": lambda: Zooter(calibration="cross_fit", seed=0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args()
    texts, quality, cost, tokens, tags = build_data()
    models = [f"m{j}" for j in range(N_MODELS)]
    chars = sum(len(t) for t in texts)
    print(
        f"{len(texts)} prompts ({chars / len(texts):.0f} chars on average) x {quality.shape[1]} "
        f"models; {os.cpu_count()} CPUs; median of {ns.repeats} runs"
    )
    header = f"{'configuration':55s} | {'fit s':>6s} | {'featurize s':>11s} | epochs"
    print(header)
    print("-" * len(header))
    for name, make in CONFIGS.items():
        times, feats = [], []
        epochs: list[int] = []
        for _ in range(ns.repeats):
            router = make()
            t0 = time.perf_counter()
            router.fit(texts, quality, models, tags=tags, cost=cost, input_tokens=tokens)
            times.append(time.perf_counter() - t0)
            feats.append(float(router.summary["featurize_s"]))
            epochs = list(router.summary["epochs"])
        print(
            f"{name:55s} | {statistics.median(times):6.1f} | {statistics.median(feats):11.1f} | "
            f"{epochs}"
        )


if __name__ == "__main__":
    main()
