"""A worker process of the Redis integration tests: one router, a seeded Bernoulli stream.

Run as ``python -m tests.integration.redis_worker MODE URL NAME SEED CALLS``: it builds
its router, prints ``ready``, waits for a line on stdin (so that the workers start
together), routes, and prints one JSON line: what it knew at start, its choices
(``[monotonic ns, model]``), how many records it could not send and how many syncs failed.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from pickllm import Candidate, Feedback, Objective, Router
from pickllm.state import RedisStore

RATES = {"a": 0.35, "b": 0.5, "c": 0.6, "d": 0.7}
"""Success rate of each model: ``d`` is the best."""
OBJECTIVE = Objective(quality=1.0, cost=0.0, latency=0.0)
"""The reward is the 0/1 quality itself."""


def pool() -> list[Candidate]:
    return [Candidate(name=n) for n in RATES]


def route_stream(router: Router, calls: int, seed: int) -> list[tuple[int, str]]:
    """``calls`` route+record with fake 0/1 rewards; (monotonic ns, model) of each call."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(calls):
        decision = router.route("a question")
        name = decision.candidate.name
        out.append((time.monotonic_ns(), name))
        router.record(decision, Feedback(quality=float(rng.random() < RATES[name])))
    return out


def main(url: str, name: str, seed: int, calls: int) -> None:
    # A generous timeout: on a loaded machine a sync can take over the default 0.1 s, and a
    # timed-out sync leaves this process learning alone until the next one. That path has
    # its own tests (Redis killed, Redis hung); here every sync must reach the store.
    store = RedisStore(url, name=name, sync_every=25, sync_interval_s=0.05, socket_timeout_s=5.0)
    router = Router(pool(), "thompson", OBJECTIVE, seed=seed, store=store)
    known = sum(s.calls for s in router.stats().values())
    print("ready", flush=True)
    sys.stdin.readline()
    choices = route_stream(router, calls, seed + 1000)
    status = router.sync()
    store.close()
    unsent = -1 if status is None else status.unsent_records
    failures = -1 if status is None else status.failures
    print(
        json.dumps({"known": known, "choices": choices, "unsent": unsent, "failures": failures}),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
