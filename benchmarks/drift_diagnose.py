"""Where a drift-aware policy's loss after the change comes from (the drift scenario's).

Run: ``python benchmarks/drift_diagnose.py [--stream train] [--seeds 40] [--aware K=V]``.
Replays :mod:`pickllm.bench.drift`'s scenario (the same seeded orders and policy seeds,
so the gap printed is the one ``benchmarks/drift.py`` prints) for the drift-aware
``lin_ucb`` of ``benchmarks/drift.py`` (``--policy`` for another, ``--aware`` to override a
setting) and splits the gap over the ``window`` prompts after the change into the
prompts before the change is detected and after; it also prints how many calls the
degraded model got before detection, its share after, the share of the calls after
detection that went to models more than 0.04 below the new best, and the false alarms
before the change. ``--oracle DROP`` tells the policy of the change at its step (its
head marked down by ``DROP``, or restarted, as a detected change would), ``--change 0``
degrades the model from the first prompt (a policy that only ever saw it degraded).
Only for the train rows' diagnosis: settings are never chosen on the reported stream.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pickllm import make_policy
from pickllm.bench.drift import drift_scenario
from pickllm.data import load_outcomes
from pickllm.policies.linear import LinearPolicy

sys.path.insert(0, str(Path(__file__).parent.parent))
from benchmarks.drift import AWARE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="routerbench_subset")
    parser.add_argument("--stream", default="train", choices=("all", "test", "train"))
    parser.add_argument("--policy", default="lin_ucb")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--change", type=int, default=None, metavar="STEP")
    parser.add_argument("--oracle", type=float, default=None, metavar="DROP")
    parser.add_argument("--aware", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    settings: dict[str, object] = dict(AWARE)
    for item in args.aware:
        key, _, value = item.partition("=")
        settings[key] = json.loads(value)
    table = load_outcomes(args.data)
    scenario = drift_scenario(table, stream=args.stream, drop=0.5)
    ts, degraded = scenario.ts, scenario.degraded
    contexts, column, old = scenario.contexts, scenario.column, scenario.old
    m = ts.reward.shape[0]
    at, window = m // 2, args.window
    change = at if args.change is None else args.change
    rows: list[tuple[float, ...]] = []
    for s in range(args.seeds):
        order = np.random.default_rng([0, s, 3]).permutation(m)
        seed = int(np.random.SeedSequence([0, s, 4]).generate_state(1)[0])
        policy = make_policy(args.policy, seed=seed, **settings)
        assert isinstance(policy, LinearPolicy)
        got = np.empty(at + window)
        chosen = np.empty(at + window, dtype=np.intp)
        detections: list[int] = []
        for t in range(at + window):
            if args.oracle is not None and t == at and table.models[old] in policy.models:
                policy._on_change(policy.models.index(table.models[old]), args.oracle)  # noqa: SLF001
                detections.append(at)
            i = int(order[t])
            decision = policy.select(contexts[i])
            j = column[decision.candidate.name]
            reward = float((ts.reward if t < change else degraded)[i, j])
            got[t], chosen[t] = reward, j
            changes = policy.changes
            policy.update(decision, reward)
            if policy.changes > changes:
                detections.append(t)
        after = order[at : at + window]
        means = degraded[after].mean(axis=0)
        best = degraded[after, int(means.argmax())]
        post = [t for t in detections if t >= at]
        delay = post[0] - at if post else window
        weak = means < means.max() - 0.04
        weak[old] = False
        late = chosen[at + delay : at + window]
        rows.append(
            (
                float(got[at:].mean() - best.mean()),
                float((best[:delay] - got[at : at + delay]).sum() / window),
                float((best[delay:] - got[at + delay :]).sum() / window),
                float(got[:at].mean()),
                float(len(detections) - len(post)),
                float((chosen[at : at + delay] == old).sum()) if post else np.nan,
                float((late == old).mean()) if late.size else np.nan,
                float(weak[late].mean()) if late.size else np.nan,
            )
        )
    r = np.array(rows)
    share_old = np.nanmean(r[:, 6]) if (~np.isnan(r[:, 6])).any() else np.nan
    share_weak = np.nanmean(r[:, 7]) if (~np.isnan(r[:, 7])).any() else np.nan
    print(
        f"{args.policy} on {table.name} ({args.stream} rows, {args.seeds} orders): gap "
        f"{r[:, 0].mean():+.4f} = -{r[:, 1].mean():.4f} before detection "
        f"-{r[:, 2].mean():.4f} after; reward before the change {r[:, 3].mean():.4f}, "
        f"false alarms before it {r[:, 4].mean():.2f} per order"
    )
    found = ~np.isnan(r[:, 5])
    print(
        f"detected in {int(found.sum())}/{len(r)} orders, after a median "
        f"{np.nanmedian(r[:, 5]) if found.any() else float('nan'):.0f} calls of the "
        f"degraded model; after detection its share {share_old:.3f}, models "
        f"more than 0.04 below the new best {share_weak:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
