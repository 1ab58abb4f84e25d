"""PerContext under key churn: route + record per call with many distinct keys vs a few.

Run: ``python benchmarks/per_context_churn.py``. A router with a ``per_context`` policy
(a learning automaton per key, ``max_keys`` 10,000) routes and records calls whose keys
cycle through ``--keys`` distinct values (100,000: almost every call meets a key it has
forgotten, so a learner is created and the least recently used one evicted) or through 4.
Prints the median microseconds per route+record over batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pickllm import Candidate, Feedback, Objective, Router, make_policy


def measure(n_keys: int, *, k: int, template: str, calls: int, batch: int) -> float:
    pool = [
        Candidate(name=f"m{i}", input_price=0.1 * (i + 1), output_price=0.3 * (i + 1))
        for i in range(k)
    ]
    policy = make_policy("per_context", policy=make_policy(template), max_keys=10_000, seed=0)
    router = Router(pool, policy, Objective(quality=1.0, cost=0.5, latency=0.2))
    keys = [f"user-{i}" for i in range(n_keys)]
    fb = Feedback(latency_s=0.3, input_tokens=100, output_tokens=50, cost_usd=1e-4, quality=0.7)
    # Warm up: fill the table so eviction runs from the first timed call.
    for i in range(min(n_keys, 10_000)):
        router.record(router.route(key=keys[i % n_keys]), fb)
    per_call: list[float] = []
    t = 10_000
    for _ in range(calls // batch):
        start = time.perf_counter()
        for _ in range(batch):
            router.record(router.route(key=keys[t % n_keys]), fb)
            t += 1
        per_call.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--template", default="learning_automaton")
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    for n_keys in (100_000, 4):
        us = measure(
            n_keys, k=args.candidates, template=args.template, calls=args.calls, batch=args.batch
        )
        print(
            f"{n_keys:>7} distinct keys: {us:6.1f} us per route+record "
            f"({args.candidates} candidates, {args.template} per key, max_keys 10,000)"
        )


if __name__ == "__main__":
    main()
