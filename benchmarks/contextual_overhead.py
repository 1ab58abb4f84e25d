"""Contextual router overhead: route + record per call with 11 models, features included.

Run: ``python benchmarks/contextual_overhead.py``. Prints the median microseconds per
route+record (through ``Router``, so the router's own work is included) for the contextual
policies (structural features of the query plus the hashed key, the default feature size)
and, for reference, Thompson sampling; then the policy alone (select + update) and the
featurizer alone. Target: <= 100 us per contextual route+record with 11 models.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pickllm import Candidate, Context, Feedback, Objective, Router, make_policy
from pickllm.policies.features import structural_features

TARGET_US = 100.0
_clock = time.perf_counter
POLICIES = ("linear_thompson", "lin_ucb", "thompson")
QUERIES = (
    "What is the capital of France?",
    "Which number is prime? A) 4 B) 6 C) 7 D) 9",
    "def add(a, b):\n    return a + b\n# write tests for this function",
    (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?"
    ),
)


def _pool(k: int) -> list[Candidate]:
    return [
        Candidate(name=f"m{i}", input_price=0.1 * (i + 1), output_price=0.3 * (i + 1))
        for i in range(k)
    ]


def _feedbacks() -> list[Feedback]:
    return [
        Feedback(
            latency_s=0.2 + 0.01 * j,
            input_tokens=500,
            output_tokens=80,
            cost_usd=1e-4,
            quality=j % 2,
        )
        for j in range(16)
    ]


def measure_router(name: str, k: int, *, batches: int, batch: int) -> float:
    """Median us per ``Router.route`` + ``Router.record``."""
    router = Router(_pool(k), make_policy(name, seed=0), Objective())
    feedbacks = _feedbacks()
    for j in range(300):
        router.record(router.route(QUERIES[j % 4], key="task"), feedbacks[j % 16])
    samples = []
    for _ in range(batches):
        start = _clock()
        for j in range(batch):
            router.record(router.route(QUERIES[j & 3], key="task"), feedbacks[j & 15])
        samples.append((_clock() - start) / batch * 1e6)
    return statistics.median(samples)


def measure_policy(name: str, k: int, *, batches: int, batch: int) -> float:
    """Median us per ``Policy.select`` + ``Policy.update`` (no router)."""
    policy = make_policy(name, seed=0)
    pool = tuple(_pool(k))
    contexts = [Context(query=q, key="task", candidates=pool) for q in QUERIES]
    for j in range(300):
        policy.update(policy.select(contexts[j & 3]), (j % 3) / 2)
    samples = []
    for _ in range(batches):
        start = _clock()
        for j in range(batch):
            policy.update(policy.select(contexts[j & 3]), (j % 3) / 2)
        samples.append((_clock() - start) / batch * 1e6)
    return statistics.median(samples)


def measure_features(*, batches: int, batch: int) -> float:
    """Median us per ``structural_features`` call."""
    samples = []
    for _ in range(batches):
        start = _clock()
        for j in range(batch):
            structural_features(QUERIES[j & 3])
        samples.append((_clock() - start) / batch * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=11, help="pool size (default: 11)")
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with the process's CPU clock, not the wall clock (on a busy machine)",
    )
    args = parser.parse_args(argv)
    global _clock  # noqa: PLW0603 - the timer of every measure_* function
    _clock = time.process_time if args.cpu_time else time.perf_counter
    k, kw = args.models, {"batches": args.batches, "batch": args.batch}
    clock = "CPU" if args.cpu_time else "wall"
    print(f"route+record, {k} models (median {clock} us per call; target <= {TARGET_US:g} us)")
    worst = 0.0
    for name in POLICIES:
        us = measure_router(name, k, **kw)
        if name != "thompson":
            worst = max(worst, us)
        print(f"  {name:16s} router {us:7.1f}   policy only {measure_policy(name, k, **kw):7.1f}")
    print(f"  structural_features {measure_features(**kw):7.1f}")
    print("OK" if worst <= TARGET_US else f"over target: {worst:.1f} us")
    return 0 if worst <= TARGET_US else 1


if __name__ == "__main__":
    raise SystemExit(main())
