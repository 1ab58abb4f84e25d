"""Replay throughput at scale: decisions per second for a 10^6-decision replay.

Run: ``python benchmarks/replay_scale.py`` (``--decisions``, ``--policies``). Uses the
``pickllm bench`` machinery (``pickllm.bench.run.run_bench``) on the bundled
``routerbench_subset``: every prompt (``stream="all"``, 3,150) streamed in as many seeded
orders as it takes to reach the number of decisions. Prints, per policy, the decisions per
second of the online replay itself (select + update, timed between the harness's progress
ticks; wall clock, and this process's CPU time, which a busy machine does not inflate) and
the end-to-end time of the run (data, baselines and metrics included).
"""

from __future__ import annotations

import argparse
import math
import time

from pickllm.bench.run import run_bench
from pickllm.data import load_outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--policies", default="thompson,lin_ucb")
    parser.add_argument("--data", default="routerbench_subset")
    args = parser.parse_args(argv)
    table = load_outcomes(args.data)
    seeds = math.ceil(args.decisions / table.n_prompts)
    decisions = seeds * table.n_prompts
    print(f"{args.data}: {table.n_prompts} prompts x {seeds} orders = {decisions:,} decisions")
    print(
        f"{'policy':<16}{'decisions/s':>13}{'(CPU time)':>12}{'replay (s)':>12}"
        f"{'CPU (s)':>9}{'end to end (s)':>16}"
    )
    for policy in args.policies.split(","):
        ticks: list[float] = []
        cpu: list[float] = []

        def progress(
            label: str, done: int, total: int, ticks: list[float] = ticks, cpu: list[float] = cpu
        ) -> None:
            del label, done, total
            ticks.append(time.perf_counter())
            cpu.append(time.process_time())

        began, began_cpu = time.perf_counter(), time.process_time()
        # The baselines run before the first stream; the replay starts after them.
        report = run_bench(table, policies=[policy], seeds=seeds, stream="all", progress=progress)
        ended = time.perf_counter()
        replay = ticks[-1] - _replay_start(began, ticks, seeds)
        replay_cpu = cpu[-1] - _replay_start(began_cpu, cpu, seeds)
        assert report.results[policy].online is not None
        print(
            f"{policy:<16}{decisions / replay:>13,.0f}{decisions / replay_cpu:>12,.0f}"
            f"{replay:>12.1f}{replay_cpu:>9.1f}{ended - began:>16.1f}"
        )
    return 0


def _replay_start(began: float, ticks: list[float], seeds: int) -> float:
    """When the first stream began: one stream's time before the first tick (estimated)."""
    if len(ticks) < 2:
        return began
    per_stream = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    return ticks[0] - per_stream if len(ticks) == seeds else began


if __name__ == "__main__":
    raise SystemExit(main())
