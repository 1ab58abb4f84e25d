"""Choose the contextual policies' settings on the train rows only (never the test rows).

Run: ``python benchmarks/tune_contextual.py POLICY [KEY=VALUE ...] [--rows replica|train]
[--seeds 10]``. Streams ``routerbench_subset``'s train rows through ``POLICY`` with the
given hyperparameters and prints its online row beside the best fixed model's reward:

* ``--rows replica`` (default): :func:`pickllm.bench.tuning.tuning_table`, folds 0 and 1
  of the train rows (869 prompts, about the test stream's 945), a proxy of the cold
  start on the test stream;
* ``--rows train``: every train row (2,205 prompts, as ``pickllm bench --stream train``),
  a proxy of the whole-data-set stream's 3,150.
"""

from __future__ import annotations

import argparse
import json

from pickllm.bench import run_bench
from pickllm.bench.tuning import tuning_table
from pickllm.data import load_outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("policy")
    parser.add_argument("params", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--data", default="routerbench_subset")
    parser.add_argument("--rows", default="replica", choices=("replica", "train"))
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    params = {}
    for item in args.params:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    table = load_outcomes(args.data)
    if args.rows == "replica":
        table, stream = tuning_table(table), "test"
    else:
        stream = "train"
    report = run_bench(
        table,
        policies=[args.policy],
        seeds=args.seeds,
        stream=stream,  # type: ignore[arg-type]
        policy_params={args.policy: params} if params else None,
    )
    result = report.results[args.policy]
    stats = result.online
    assert stats is not None
    best = max(r.mean_reward or 0.0 for r in report.results.values() if r.kind == "model")
    reward = result.mean_reward or 0.0
    print(
        f"{args.rows} {stats.steps} x {stats.seeds} {args.policy} {json.dumps(params)}: "
        f"reward {reward:.4f} +- {stats.reward_std:.4f}, best fixed {best:.4f}, "
        f"gap {reward - best:+.4f}, regret {stats.regret_best_fixed:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
