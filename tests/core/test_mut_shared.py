"""The linear policies' shared prior head and change detection, against their formulas.

Expected values are recomputed here from the documented rules (module docstring of
``pickllm.policies.linear``): ridge sums for the heads and the shared head over
``z = (x, relative price)``, discounting, Page-Hinkley on ``predicted - reward`` and what a
detected change does (reset or mark down the changed head, keep ``change_keep`` of the
others' evidence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pickllm.policies.lin_ucb import LinUCB
from pickllm.types import Candidate, Context

CHEAP = Candidate(name="cheap", input_price=1.0, output_price=1.0)
MID = Candidate(name="mid", input_price=3.0, output_price=3.0)
DEAR = Candidate(name="dear", input_price=5.0, output_price=5.0)
POOL = (CHEAP, MID, DEAR)
RELATIVE = {"cheap": 0.0, "mid": 0.5, "dear": 1.0}  # 0 for the cheapest, 1 for the dearest


def arrays(policy: LinUCB) -> dict[str, Any]:
    state = policy.state_dict()["state"]
    return {
        k: v if k == "models" or not isinstance(v, list) else np.asarray(v, dtype=float)
        for k, v in state.items()
    }


def test_warm_start_fits_the_shared_head_on_every_pseudo_observation() -> None:
    reg, weight = 2.0, 0.5
    policy = LinUCB(shared_prior=True, key_buckets=0, regularization=reg, seed=0)
    features = [(0.2, 0.9), (0.7, 0.1), (0.4, 0.4), (1.0, 0.3)]
    contexts = [Context(candidates=POOL, features=f) for f in features]
    rewards = np.array([[0.1, 0.5, 0.9], [0.8, 0.6, 0.2], [0.3, 0.3, 0.7], [0.0, 1.0, 0.5]])
    policy.warm_start(contexts, rewards, [c.name for c in POOL], weight=weight)
    x = np.array([(1.0, *f) for f in features])  # a bias, then the given features
    a0 = reg * np.eye(4)
    b0 = np.zeros(4)
    s0 = np.zeros(4)
    for col, cand in enumerate(POOL):
        z = np.column_stack((x, np.full(len(x), RELATIVE[cand.name])))
        a0 += weight * z.T @ z
        b0 += weight * z.T @ rewards[:, col]
        s0 += weight * z.sum(axis=0)
    got = arrays(policy)
    np.testing.assert_allclose(got["price"], [RELATIVE[c.name] for c in POOL])
    np.testing.assert_allclose(got["shared_A"], a0, atol=1e-12)
    np.testing.assert_allclose(got["shared_A_inv"], np.linalg.inv(a0), atol=1e-12)
    np.testing.assert_allclose(got["shared_b"], b0, atol=1e-12)
    np.testing.assert_allclose(got["shared_s"], s0, atol=1e-12)
    # The heads' prior means follow the fitted shared head at once: the same predictions as
    # a policy restored from the state (whose load refits the shared head's weights).
    restored = LinUCB(shared_prior=True, key_buckets=0, regularization=reg, seed=0)
    restored.load_state_dict(policy.state_dict())
    probe = Context(candidates=POOL, features=(0.5, 0.5))
    for name, (mean, width) in policy.predict(probe).items():
        assert restored.predict(probe)[name] == pytest.approx((mean, width), abs=1e-12)


@pytest.mark.parametrize("discount", [1.0, 0.8])
def test_the_shared_head_learns_every_reward_with_its_relative_price(discount: float) -> None:
    reg = 2.0
    policy = LinUCB(shared_prior=True, key_buckets=0, regularization=reg, discount=discount, seed=3)
    a0 = reg * np.eye(4)
    b0 = np.zeros(4)
    s0 = np.zeros(4)
    rng = np.random.default_rng(4)
    for t in range(30):
        f = (float(rng.random()), float(rng.random()))
        decision = policy.select(Context(candidates=POOL, features=f))
        reward = float(rng.random())
        policy.update(decision, reward)
        z = np.array([1.0, *f, RELATIVE[decision.candidate.name]])
        # Discounting: the past weighs `discount`, the prior keeps its full weight.
        a0 = discount * a0 + np.outer(z, z) + (1.0 - discount) * reg * np.eye(4)
        b0 = discount * b0 + reward * z
        s0 = discount * s0 + z
        got = arrays(policy)
        np.testing.assert_allclose(got["shared_A"], a0, atol=1e-9, err_msg=f"step {t}")
        np.testing.assert_allclose(got["shared_A_inv"], np.linalg.inv(a0), atol=1e-9)
        np.testing.assert_allclose(got["shared_b"], b0, atol=1e-9)
        np.testing.assert_allclose(got["shared_s"], s0, atol=1e-9)
    # The predictions use the updated shared head (as a restored copy does).
    restored = LinUCB(
        shared_prior=True, key_buckets=0, regularization=reg, discount=discount, seed=3
    )
    restored.load_state_dict(policy.state_dict())
    probe = Context(candidates=POOL, features=(0.5, 0.5))
    for name, value in policy.predict(probe).items():
        assert restored.predict(probe)[name] == pytest.approx(value, abs=1e-12)


def _expected_after_learning(
    before: dict[str, Any], i: int, x: np.ndarray, r: float
) -> dict[str, Any]:
    """``before`` plus one reward ``r`` for head ``i`` (no discount)."""
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in before.items()}
    out["A"][i] += np.outer(x, x)
    out["b"][i] += r * x
    out["s"][i] += x
    out["n"][i] += 1.0
    z = np.append(x, out["price"][i])
    out["shared_A"] += np.outer(z, z)
    out["shared_b"] += r * z
    out["shared_s"] += z
    return out


@pytest.mark.parametrize(("shift", "keep"), [(False, 0.5), (True, 1.0), (True, 0.5), (False, 1.0)])
def test_page_hinkley_accumulates_drops_and_a_change_does_what_is_documented(
    shift: bool, keep: float
) -> None:
    reg, delta, threshold = 2.0, 0.05, 0.6
    policy = LinUCB(
        shared_prior=True,
        key_buckets=0,
        regularization=reg,
        prior_mean=0.5,
        change_threshold=threshold,
        change_delta=delta,
        change_keep=keep,
        change_shift=shift,
        seed=0,
    )
    f = (0.3, 0.7)
    x = np.array([1.0, *f])
    only = {c.name: Context(candidates=(c,), features=f) for c in POOL}
    both = Context(candidates=POOL, features=f)
    policy.select(both)  # every head exists, with the pool's relative prices
    for _ in range(15):  # 'dear' is good and stays good
        policy.update(policy.select(only["dear"]), 0.8)
    # Then 'cheap' degrades, by less than the threshold per call: the drops add up.
    rewards = [0.9] * 15 + [0.6] * 30
    changed_at = None
    for t, reward in enumerate(rewards):
        predicted = policy.predict(only["cheap"])["cheap"][0]
        before = arrays(policy)
        policy.update(policy.select(only["cheap"]), reward)
        after = arrays(policy)
        i = after["models"].index("cheap")
        drop = predicted - reward
        ph = max(0.0, before["page_hinkley"][i] + drop - delta)
        if after["changes"] == before["changes"]:
            assert after["page_hinkley"][i] == pytest.approx(ph, abs=1e-12)
            run = (before["run_sum"][i] + drop, before["run_n"][i] + 1) if ph > 0 else (0, 0)
            assert (after["run_sum"][i], after["run_n"][i]) == pytest.approx(run, abs=1e-12)
            continue
        changed_at = t
        assert ph > threshold
        assert after["changes"] == before["changes"] + 1
        learned = _expected_after_learning(before, i, x, reward)
        eye = reg * np.eye(3)
        for j, name in enumerate(after["models"]):
            if j == i and shift:
                # Marked down by the mean drop since the test last stood at 0; evidence kept.
                shortfall = (before["run_sum"][i] + drop) / (before["run_n"][i] + 1)
                np.testing.assert_allclose(after["A"][j], learned["A"][j], atol=1e-9)
                np.testing.assert_allclose(
                    after["b"][j], learned["b"][j] - shortfall * learned["s"][j], atol=1e-9
                )
                assert after["n"][j] == pytest.approx(learned["n"][j])
            elif j == i:
                np.testing.assert_allclose(after["A"][j], eye, atol=1e-12)  # back to the prior
                assert not after["b"][j].any()
                assert not after["s"][j].any()
                assert after["n"][j] == 0.0
            else:
                a_kept = eye + keep * (learned["A"][j] - eye)
                np.testing.assert_allclose(after["A"][j], a_kept, atol=1e-9, err_msg=name)
                np.testing.assert_allclose(after["A_inv"][j], np.linalg.inv(a_kept), atol=1e-9)
                np.testing.assert_allclose(after["b"][j], keep * learned["b"][j], atol=1e-9)
                np.testing.assert_allclose(after["s"][j], keep * learned["s"][j], atol=1e-9)
                assert after["n"][j] == pytest.approx(keep * learned["n"][j])
        # The shared head keeps `keep` of its evidence; with the shift, the changed model's
        # rewards there (t + 1 of them, all at z = (x, its relative price 0)) are first
        # marked down by the same shortfall.
        eye0 = reg * np.eye(4)
        a0 = eye0 + keep * (learned["shared_A"] - eye0)
        np.testing.assert_allclose(after["shared_A"], a0, atol=1e-9)
        np.testing.assert_allclose(after["shared_A_inv"], np.linalg.inv(a0), atol=1e-9)
        b0 = learned["shared_b"]
        if shift:
            shortfall = (before["run_sum"][i] + drop) / (before["run_n"][i] + 1)
            b0 = b0 - shortfall * (t + 1) * np.append(x, RELATIVE["cheap"])
        np.testing.assert_allclose(after["shared_b"], keep * b0, atol=1e-9)
        np.testing.assert_allclose(after["shared_s"], keep * learned["shared_s"], atol=1e-9)
        # Every test starts again.
        assert not after["page_hinkley"].any()
        assert not after["run_sum"].any()
        assert not after["run_n"].any()
        break
    assert changed_at is not None
    assert changed_at >= 17  # only after the drop, and after more than one step of it
