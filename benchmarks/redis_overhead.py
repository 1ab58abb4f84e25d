"""Route+record overhead with the Redis store (local copy on the hot path) vs in-process.

Run: ``python benchmarks/redis_overhead.py`` (starts its own ``redis-server`` on a free
loopback port; ``--url redis://...`` uses a running one). Prints the median microseconds
per route+record, in batches, for: no store (one process alone), a ``MemoryStore``, and a
``RedisStore`` with the default sync (every 1 s) and with a sync every 100 records (batches
alternate between the four), the ratio RedisStore / MemoryStore, and the median time of one
sync with Redis (what the record that triggers it pays, once per interval). Target: <= 2x.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pickllm import Candidate, Feedback, Objective, Router
from pickllm.state import MemoryStore, RedisStore, StateStore

TARGET_RATIO = 2.0


def measure_sync(url: str, name: str, policy: str, *, syncs: int = 50) -> float:
    """Median milliseconds of one ``Router.sync()`` with Redis after 20 new records."""
    pool = [Candidate(name=f"m{i}") for i in range(4)]
    store = RedisStore(url, name=name)
    router = Router(pool, policy, Objective(), seed=0, store=store)
    samples = []
    for _ in range(syncs):
        for _ in range(20):
            router.record(router.route("What is 2 + 2?"), Feedback(quality=1.0))
        start = time.perf_counter()
        router.sync()
        samples.append((time.perf_counter() - start) * 1e3)
    store.close()
    return statistics.median(samples)


def measure(
    stores: list[StateStore | None], policy: str, *, batches: int, batch: int
) -> list[float]:
    """Median us per route+record with each store; batches alternate between the stores,
    so that a busy machine slows them all alike."""
    pool = [
        Candidate(name=f"m{i}", input_price=0.1 * (i + 1), output_price=0.3 * (i + 1))
        for i in range(4)
    ]
    routers = [Router(pool, policy, Objective(), seed=0, store=store) for store in stores]
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
    for router in routers:
        for j in range(200):
            router.record(router.route("warm-up query"), feedbacks[j % 16])
    samples: list[list[float]] = [[] for _ in routers]
    for _ in range(batches):
        for router, own in zip(routers, samples, strict=True):
            start = time.perf_counter()
            for j in range(batch):
                router.record(router.route("What is the capital of France?"), feedbacks[j & 15])
            own.append((time.perf_counter() - start) / batch * 1e6)
    for router, store in zip(routers, stores, strict=True):
        router.sync()
        if store is not None:
            store.close()
    return [statistics.median(own) for own in samples]


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        msg = "redis-server is not on PATH: install it, or pass --url redis://host:port/0"
        raise SystemExit(msg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - the redis-server found on PATH
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "Ready to accept connections" in line:
            break
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None, help="a running Redis (default: start one)")
    parser.add_argument("--policies", default="thompson,lin_ucb")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    worst = 0.0
    with redis_server(args.url) as url:
        print(
            f"{'policy':<12}{'no store':>10}{'Memory':>10}{'Redis 1s':>10}"
            f"{'Redis/100':>11}{'ratio 1s':>10}{'ratio/100':>11}{'sync ms':>9}"
        )
        for n, policy in enumerate(args.policies.split(",")):
            stores: list[StateStore | None] = [
                None,
                MemoryStore(name=f"m{n}"),
                RedisStore(url, name=f"r{n}"),
                RedisStore(url, name=f"h{n}", sync_every=100),
            ]
            alone, memory, redis_1s, redis_100 = measure(
                stores, policy, batches=args.batches, batch=args.batch
            )
            sync_ms = measure_sync(url, f"s{n}", policy)
            ratio, ratio_100 = redis_1s / memory, redis_100 / memory
            worst = max(worst, ratio)
            print(
                f"{policy:<12}{alone:>10.1f}{memory:>10.1f}{redis_1s:>10.1f}"
                f"{redis_100:>11.1f}{ratio:>10.2f}{ratio_100:>11.2f}{sync_ms:>9.2f}"
            )
    print("(us per route+record, median of batches; sync ms: one sync after 20 records)")
    verdict = "meets" if worst <= TARGET_RATIO else "MISSES"
    print(
        f"\nworst RedisStore / MemoryStore ratio (default sync): {worst:.2f}x "
        f"({verdict} the {TARGET_RATIO:g}x target)"
    )
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
