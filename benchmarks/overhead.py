"""Router overhead: route + record per call, for every policy, with 4 and 64 candidates.

Run: ``python benchmarks/overhead.py`` (or ``make bench-overhead``). Prints the median
microseconds per route+record over many calls, measured in batches so the timer's own cost
is amortised. Target: <= 20 us for the non-contextual policies with 4 candidates.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pickllm import Candidate, Feedback, Objective, Router, available_policies, make_policy
from pickllm.policies import Policy

TARGET_US = 20.0


def _args(name: str, pool: list[Candidate] | None = None) -> dict[str, object]:
    if name == "fixed":
        return {"model": pool[0].name if pool else "m0"}
    if name == "per_context":
        return {"policy": make_policy("epsilon_greedy_q", seed=0)}
    return {}


def build_policy(name: str, pool: list[Candidate]) -> Policy:
    return make_policy(name, seed=0, **_args(name, pool))


def measure(name: str, k: int, *, batches: int, batch: int) -> float:
    pool = [
        Candidate(name=f"m{i}", input_price=0.1 * (i + 1), output_price=0.3 * (i + 1))
        for i in range(k)
    ]
    router = Router(pool, build_policy(name, pool), Objective(quality=1.0, cost=0.5, latency=0.2))
    feedbacks = [
        Feedback(
            latency_s=0.2 + 0.01 * j,
            input_tokens=500,
            output_tokens=80,
            cost_usd=1e-4,
            quality=j % 2,
        )
        for j in range(16)
    ]
    key = "topic" if name == "per_context" else None
    # Warm up so one-off costs (first decision id, lazy imports) are not measured.
    for j in range(200):
        router.record(router.route("warm-up query", key=key), feedbacks[j % 16])
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for j in range(batch):
            router.record(
                router.route("What is the capital of France?", key=key), feedbacks[j & 15]
            )
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    # A trained query scorer ("learned") is measured by benchmarks/learned_routers.py.
    names = [n for n in available_policies() if n != "learned"]
    print(f"{'policy':<22}{'4 candidates (us)':>20}{'64 candidates (us)':>20}")
    worst = 0.0
    for name in names:
        us4 = measure(name, 4, batches=args.batches, batch=args.batch)
        us64 = measure(name, 64, batches=max(5, args.batches // 3), batch=args.batch)
        if not make_policy(name, **_args(name)).contextual:
            worst = max(worst, us4)
        print(f"{name:<22}{us4:>20.1f}{us64:>20.1f}")
    verdict = "meets" if worst <= TARGET_US else "MISSES"
    print(
        f"\nslowest non-contextual policy, 4 candidates: {worst:.1f} us "
        f"({verdict} the {TARGET_US:.0f} us target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
