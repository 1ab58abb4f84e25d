"""PickLLM's learners settle on the best candidate (algorithm notes §6, "Convergence speed").

Noise model: Bernoulli rewards; the best of K candidates succeeds with probability
``0.1 + gap``, the others with 0.1; the best one's position is ``seed % K``. Each setting
runs 100 seeded sessions (seeds 0-99) through the policies' public ``select``/``update``
and must settle on the best candidate in at least 95 of them:

* ``LearningAutomaton``: settled once locked (max P >= 0.99). Learning rates 0.1 (K=4,
  gap 0.2), 0.05 (K=4, gap 0.05), 0.03 (K=16, gap 0.2), 0.015 (K=16, gap 0.05).
* ``EpsilonGreedyQ`` with sample averages (``alpha=None``): settled once epsilon < 0.01 and
  the greedy candidate is unchanged for 20 updates. ``epsilon_decay`` 0.99 (K=4, gap 0.2),
  0.9988 (K=4, gap 0.05), 0.997 (K=16, gap 0.2), 0.9997 (K=16, gap 0.05).

The settings live in ``pickllm.testing.convergence_settings`` (which explains the choice of
noise model). The 100-session runs are marked ``slow``: ``make test`` runs them in its
second step (``pytest -m slow``), and with ``-v`` each prints its measured settle rate and
median settle step (the README's table). The default run keeps a quick check of the
easier settings (gap 0.2, 20 sessions), which fails just as well if a learner stops
settling on the best candidate.
"""

from __future__ import annotations

import pytest

from pickllm.policies import EpsilonGreedyQ, LearningAutomaton
from pickllm.testing import (
    ConvergenceSetting,
    converge,
    convergence_settings,
    greedy_commitment,
    lock_commitment,
    simulate_convergence,
)

SEEDS = range(100)
SETTINGS = convergence_settings()


def test_the_settings_cover_both_learners_pool_sizes_and_gaps() -> None:
    grid = {(s.label.split("(")[0], s.arms, s.gap) for s in SETTINGS}
    assert grid == {
        (name, arms, gap)
        for name in ("LearningAutomaton", "EpsilonGreedyQ")
        for arms in (4, 16)
        for gap in (0.2, 0.05)
    }
    assert all(s.base == 0.1 for s in SETTINGS)


def _label(setting: ConvergenceSetting) -> str:
    return f"{setting.label.split('(')[0]}-K{setting.arms}-gap{setting.gap}"


@pytest.mark.slow
@pytest.mark.parametrize("setting", SETTINGS, ids=_label)
def test_settles_on_the_best_candidate(
    setting: ConvergenceSetting, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = converge(setting, SEEDS)
    if request.config.get_verbosity() > 0:  # the measured figures with -v, silent with -q
        with capsys.disabled():
            print(f"\n{summary.row()}")
    assert summary.on_best >= 0.95, summary.row()


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.gap == 0.2], ids=_label)
def test_settles_on_the_best_candidate_quick(setting: ConvergenceSetting) -> None:
    summary = converge(setting, range(20))
    assert summary.on_best >= 0.95, summary.row()


def test_simulation_counts_the_window_and_reports_no_settlement() -> None:
    # epsilon_decay 0.5: epsilon < 0.01 after 7 updates, then 20 updates of the same arm.
    result = simulate_convergence(
        EpsilonGreedyQ(alpha=None, epsilon_decay=0.5, seed=0),
        [0.9, 0.1],
        steps=200,
        seed=0,
        commitment=greedy_commitment(0.01),
        window=20,
    )
    assert result.step is not None
    assert result.step >= 7 + 19
    assert result.best == "arm0"
    never = simulate_convergence(
        LearningAutomaton(learning_rate=0.001, seed=0),
        [0.5, 0.5],
        steps=50,
        seed=0,
        commitment=lock_commitment,
    )
    assert (never.step, never.arm, never.on_best) == (None, None, False)


def test_simulation_is_reproducible_and_rewards_do_not_follow_the_policy_seed() -> None:
    def run(seed: int) -> tuple[int | None, str | None]:
        r = simulate_convergence(
            LearningAutomaton(learning_rate=0.1, seed=seed),
            [0.1, 0.3, 0.1, 0.1],
            steps=5000,
            seed=seed,
            commitment=lock_commitment,
        )
        return r.step, r.arm

    assert run(3) == run(3)
    # With the rewards drawn from the policy's own seed, the automaton's draws and the
    # rewards would correlate and it would lock on arm0 about as often as on the best.
    assert sum(run(s)[1] == "arm1" for s in range(20)) >= 19
