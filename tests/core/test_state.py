"""The merge of shared learning state, without a server: MemoryStore and direct batches."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
import pytest

import pickllm.state
from pickllm import Candidate, Feedback, Router
from pickllm.engine.settings import RoutingSettings
from pickllm.errors import (
    BudgetExceededError,
    ConfigError,
    StateError,
    StoreUnavailableError,
    StoreWarning,
)
from pickllm.policies.lin_ucb import LinUCB
from pickllm.policies.per_context import PerContext
from pickllm.policies.thompson_sampling import ThompsonSampling
from pickllm.state import MemoryStore, RedisStore, StateStore
from pickllm.state.store import Batch, BreakerEvent, Shared
from pickllm.testing import ManualClock

POOL = [Candidate(name=n) for n in ("a", "b", "c")]
RATES = {"a": 0.2, "b": 0.8, "c": 0.5}
SHARED = [
    "thompson",
    "ucb1",
    "epsilon_greedy_q",
    "learning_automaton",
    "lin_ucb",
    "linear_thompson",
]


class FlakyStore(MemoryStore):
    """A MemoryStore that can be made unreachable, or lose the replies of exchanges."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.down = False
        self.lose_replies = False

    def _check(self) -> None:
        if self.down:
            msg = "store down (test)"
            raise StoreUnavailableError(msg)

    def open(self, schema: Any) -> str:
        self._check()
        return super().open(schema)

    def exchange(self, batch: Batch) -> Shared:
        self._check()
        shared = super().exchange(batch)
        if self.lose_replies:
            msg = "reply lost (test)"
            raise StoreUnavailableError(msg)
        return shared

    def read_policy(self) -> dict[str, Any] | None:
        self._check()
        return super().read_policy()

    def update_policy(self, update: Any) -> dict[str, Any]:
        self._check()
        return super().update_policy(update)


def _run(routers: list[Router], calls: int, seed: int = 0) -> dict[str, int]:
    """Round-robin ``calls`` route+record over ``routers``; the calls made per model."""
    rng = np.random.default_rng(seed)
    made = dict.fromkeys(RATES, 0)
    for t in range(calls):
        router = routers[t % len(routers)]
        decision = router.route("a short question?")
        name = decision.candidate.name
        made[name] += 1
        router.record(decision, Feedback(quality=float(rng.random() < RATES[name])))
    return made


def _rewards_round_robin(routers: list[Router], calls: int, seed: int) -> dict[str, list[float]]:
    """Round-robin ``calls`` route+record with fair-coin quality; the rewards per model."""
    rewards: dict[str, list[float]] = {n: [] for n in RATES}
    rng = np.random.default_rng(seed)
    for t in range(calls):
        router = routers[t % len(routers)]
        decision = router.route("q")
        reward = router.record(decision, Feedback(quality=float(rng.random() < 0.5)))
        assert reward is not None
        rewards[decision.candidate.name].append(reward)
    return rewards


def _flush(routers: list[Router]) -> None:
    for router in routers:
        router.sync()
    for router in routers:  # every router adopts every other's last batch
        router.sync()


@pytest.mark.parametrize("policy", SHARED)
def test_routers_sharing_a_store_count_every_call_once(policy: str) -> None:
    store = MemoryStore(name="t", sync_every=7)
    routers = [Router(POOL, policy, seed=i, store=store) for i in range(3)]
    made = _run(routers, 300)
    _flush(routers)
    for router in routers:
        assert {n: s.calls for n, s in router.stats().items()} == made
    states = [r.policy.state_dict()["state"] for r in routers]
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        for field, value in state.items():
            if np.asarray(value).dtype.kind == "f":  # sums of floats: equal up to rounding
                np.testing.assert_allclose(value, states[0][field], rtol=1e-12, atol=1e-12)
            else:
                assert value == states[0][field], field


def test_thompson_totals_are_exactly_the_sums_of_every_reward() -> None:
    store = MemoryStore(name="t", sync_every=5)
    routers = [Router(POOL, "thompson", seed=i, store=store) for i in range(4)]
    rewards = _rewards_round_robin(routers, 400, seed=3)
    _flush(routers)
    policy = routers[0].policy
    assert isinstance(policy, ThompsonSampling)
    for name, (alpha, beta) in policy.posteriors.items():
        assert alpha == pytest.approx(1.0 + sum(rewards[name]), abs=1e-9)
        assert beta == pytest.approx(1.0 + len(rewards[name]) - sum(rewards[name]), abs=1e-9)


def test_a_router_built_later_starts_from_what_the_others_learned() -> None:
    store = MemoryStore(name="t", sync_every=10)
    routers = [Router(POOL, "thompson", seed=i, store=store) for i in range(2)]
    _run(routers, 400)
    _flush(routers)
    late = Router(POOL, "thompson", seed=9, store=store)
    assert sum(s.calls for s in late.stats().values()) == 400
    picks = [late.route("q").candidate.name for _ in range(50)]
    assert picks.count("b") > 40


def test_a_batch_whose_reply_was_lost_is_resent_and_counted_once() -> None:
    store = FlakyStore(name="t", sync_every=1)
    router = Router(POOL, "thompson", seed=0, store=store)
    store.lose_replies = True
    with pytest.warns(StoreWarning, match="unreachable"):
        _run([router], 5)
    store.lose_replies = False
    router.sync()
    other = Router(POOL, "thompson", seed=1, store=store)
    assert sum(s.calls for s in other.stats().values()) == 5


def test_the_same_batch_is_applied_once() -> None:
    store = MemoryStore(name="t")
    store.open({"version": 1})
    batch = Batch(writer="w", seq=1, sums={"s|calls|a": 2.0})
    store.exchange(batch)
    shared = store.exchange(batch)
    assert shared.sums == {"s|calls|a": 2.0}
    shared = store.exchange(Batch(writer="w", seq=2, sums={"s|calls|a": 1.0}))
    assert shared.sums == {"s|calls|a": 3.0}


def test_store_down_routing_goes_on_warns_rate_limited_and_loses_nothing() -> None:
    clock = ManualClock()
    store = FlakyStore(name="t", sync_interval_s=1.0, warn_interval_s=30.0)
    router = Router(POOL, "thompson", seed=0, store=store, clock=clock)
    store.down = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(100):
            clock.now = step * 0.5  # a sync is due every other call, 50 s in all
            _run([router], 1, seed=step)
    issued = [w for w in caught if issubclass(w.category, StoreWarning)]
    assert len(issued) == 2  # at 0 s and at 30 s, not at every failed sync
    status = router.sync()
    assert status is not None
    assert not status.connected
    assert status.unsent_records == 100
    store.down = False
    status = router.sync()
    assert status is not None
    assert status.connected
    assert status.unsent_records == 0
    other = Router(POOL, "thompson", seed=1, store=store)
    assert sum(s.calls for s in other.stats().values()) == 100


@pytest.mark.parametrize("policy", ["thompson", "learning_automaton"])
def test_a_lost_namespace_is_reseeded_from_the_local_copy(policy: str) -> None:
    store = MemoryStore(name="t", sync_every=4)
    router = Router(POOL, policy, seed=0, store=store)
    _run([router], 30)
    router.sync()
    learned = router.policy.state_dict()["state"]
    store.clear()  # what a Redis restarted without persistence looks like
    _run([router], 10, seed=1)
    router.sync()
    late = Router(POOL, policy, seed=1, store=store)
    assert sum(s.calls for s in late.stats().values()) == 40
    if policy == "learning_automaton":
        document = store.read_policy()
        assert document is not None
        assert document["state"] == router.policy.state_dict()["state"] != learned


def test_a_store_down_at_construction_is_a_warning_and_synced_later() -> None:
    store = FlakyStore(name="t")
    store.down = True
    with pytest.warns(StoreWarning):
        router = Router(POOL, "ucb1", seed=0, store=store)
    _run([router], 3)
    store.down = False
    router.sync()
    assert sum(s.calls for s in Router(POOL, "ucb1", store=store).stats().values()) == 3


def test_replayed_updates_are_bounded_and_drops_counted() -> None:
    store = FlakyStore(name="t", max_queue=5)
    router = Router(POOL, "learning_automaton", seed=0, store=store)
    store.down = True
    _run([router], 12)
    with pytest.warns(StoreWarning):
        status = router.sync()
    assert status is not None
    assert status.queued_updates == 5
    assert status.dropped_updates == 7


def test_replayed_policy_is_serialised_and_sums_to_one() -> None:
    store = MemoryStore(name="t", sync_every=3)
    routers = [Router(POOL, "learning_automaton", seed=i, store=store) for i in range(3)]
    _run(routers, 150)
    _flush(routers)
    probabilities = routers[0].policy.state_dict()["state"]["probabilities"]
    assert sum(probabilities.values()) == pytest.approx(1.0)
    document = store.read_policy()
    assert document is not None
    assert document["state"]["probabilities"] == probabilities
    assert sorted(document["applied"]) == sorted(r._sync._writer for r in routers)  # type: ignore[union-attr]


def test_another_policy_in_the_namespace_is_refused() -> None:
    store = MemoryStore(name="t")
    Router(POOL, "thompson", store=store)
    with pytest.raises(StateError, match="same policy"):
        Router(POOL, "ucb1", store=store)
    with pytest.raises(StateError, match="same policy"):
        Router(POOL, ThompsonSampling(prior_alpha=2.0), store=store)
    Router(POOL, ThompsonSampling(seed=5), store=store)  # seeds may differ


def test_another_schema_version_is_refused() -> None:
    store = MemoryStore(name="t")
    store.open({"version": 999, "policy": None})
    with pytest.raises(StateError, match="schema version 999"):
        Router(POOL, "thompson", store=store)


@pytest.mark.parametrize(
    "policy",
    [LinUCB(discount=0.9), LinUCB(change_threshold=1.0), PerContext(policy=ThompsonSampling())],
)
def test_policies_whose_learning_cannot_be_shared_are_refused(policy: Any) -> None:
    with pytest.raises(ConfigError, match="cannot share"):
        Router(POOL, policy, store=MemoryStore(name="t"))


def test_non_learning_policies_share_statistics_only() -> None:
    store = MemoryStore(name="t", sync_every=1)
    routers = [Router(POOL, "random", seed=i, store=store) for i in range(2)]
    made = _run(routers, 20)
    _flush(routers)
    assert {n: s.calls for n, s in routers[1].stats().items()} == made


def test_syncs_follow_the_interval_on_the_routers_clock() -> None:
    clock = ManualClock()
    store = MemoryStore(name="t", sync_interval_s=10.0)
    router = Router(POOL, "thompson", seed=0, store=store, clock=clock)
    syncs = router.sync()
    assert syncs is not None
    before = syncs.syncs
    _run([router], 30)
    status = router._sync.status()  # type: ignore[union-attr]
    assert status.syncs == before
    clock.now = 10.0
    _run([router], 1)
    assert router._sync.status().syncs == before + 1  # type: ignore[union-attr]


def test_linear_decisions_keep_their_features_across_a_sync() -> None:
    store = MemoryStore(name="t")
    router = Router(POOL, "lin_ucb", seed=0, store=store)
    decision = router.route("def f(x): return x")
    policy = router.policy
    assert isinstance(policy, LinUCB)
    assert decision.decision_id in policy._pending
    _run([router], 3)
    router.sync()
    assert decision.decision_id in policy._pending


def test_circuit_opened_by_one_router_is_skipped_by_the_others() -> None:
    clock = ManualClock()
    store = MemoryStore(name="t", sync_every=1, wall_clock=clock)
    first = Router(POOL, "thompson", seed=0, store=store, clock=clock, breaker_failures=2)
    second = Router(POOL, "thompson", seed=1, store=store, clock=clock, breaker_failures=2)
    for _ in range(2):
        first.record(first.route("q", pin="b"), Feedback(error="Boom", latency_s=0.1))
    second.sync()
    assert second.stats()["b"].circuit == "open"
    assert all(second.route("q").candidate.name != "b" for _ in range(30))
    clock.now = 31.0  # cooldown over: a probe; its success closes the circuit everywhere
    second.record(second.route("q", pin="b"), Feedback(quality=1.0))
    first.sync()
    assert first.stats()["b"].circuit == "closed"


def test_spend_is_shared_within_a_period() -> None:
    clock = ManualClock()
    store = MemoryStore(name="t", sync_every=1, wall_clock=clock)
    routers = [
        Router(POOL, "thompson", seed=i, store=store, clock=clock, budget_usd=1.0) for i in range(2)
    ]
    for router in routers:
        router.record(router.route("q"), Feedback(quality=1.0, cost_usd=0.6))
    _flush(routers)
    assert routers[0].spend().spent_usd == pytest.approx(1.2)
    with pytest.raises(BudgetExceededError):
        routers[1].route("q")
    clock.now = 86_400.0  # the next period, on the shared wall clock
    routers[1].route("q")


def test_routing_settings_pass_the_store_to_the_router() -> None:
    store = MemoryStore(name="t")
    engine = RoutingSettings(cost=0.0, store=store).build_engine(["a", "b"], {})
    assert engine.router.store is store


def test_store_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="sync_interval_s"):
        MemoryStore(sync_interval_s=0)
    with pytest.raises(ConfigError, match="name"):
        MemoryStore(name="a:b")
    with pytest.raises(ConfigError, match="store"):
        Router(POOL, store="redis://localhost")  # type: ignore[arg-type]


def test_redis_store_without_the_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pickllm\[redis\]"):
        RedisStore(name="t")


def test_breaker_events_keep_the_latest() -> None:
    store = MemoryStore(name="t")
    store.open({"version": 1})
    store.exchange(Batch(writer="w", seq=1, breakers={"a": BreakerEvent("open", 5.0, 3)}))
    shared = store.exchange(
        Batch(writer="v", seq=1, breakers={"a": BreakerEvent("closed", 4.0, 0)})
    )
    assert shared.breakers["a"] == BreakerEvent("open", 5.0, 3)


def test_public_surface() -> None:
    assert sorted(pickllm.state.__all__) == [
        "MemoryStore",
        "RedisStore",
        "StateStore",
        "SyncStatus",
    ]
    assert issubclass(MemoryStore, StateStore)
    assert issubclass(StoreWarning, UserWarning)


def test_forked_siblings_write_as_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(name="t", sync_every=1)
    first = Router(POOL, "thompson", seed=0, store=store)
    second = Router(POOL, "thompson", seed=1, store=store)
    assert first._sync is not None
    assert second._sync is not None
    # What two children of one pre-fork parent look like: the same writer id and seq.
    second._sync._writer, second._sync._seq = first._sync._writer, first._sync._seq
    monkeypatch.setattr("pickllm.state.sync.os.getpid", lambda: -1)
    _run([first, second], 10)
    _flush([first, second])
    assert first._sync._writer != second._sync._writer
    assert sum(s.calls for s in Router(POOL, store=store).stats().values()) == 10


def test_sample_mean_q_learning_merges_exactly() -> None:
    from pickllm.policies.epsilon_greedy_q import EpsilonGreedyQ

    store = MemoryStore(name="t", sync_every=3)
    routers = [
        Router(POOL, EpsilonGreedyQ(alpha=None, epsilon_decay=0.99, seed=i), store=store)
        for i in range(3)
    ]
    rewards = _rewards_round_robin(routers, 200, seed=5)
    _flush(routers)
    policy = routers[1].policy
    assert isinstance(policy, EpsilonGreedyQ)
    assert policy.counts == {n: len(r) for n, r in rewards.items() if r}
    for name, q in policy.q_values.items():
        assert q == pytest.approx(sum(rewards[name]) / len(rewards[name]))
    assert policy.current_epsilon == pytest.approx(0.99**200)


def test_background_syncs_leave_the_record_to_a_worker_thread() -> None:
    clock = ManualClock()
    store = MemoryStore(name="t", sync_interval_s=1.0, background=True)
    router = Router(POOL, "thompson", seed=0, store=store, clock=clock)
    _run([router], 5)
    clock.now = 2.0
    _run([router], 1)
    assert router._sync is not None
    router._sync.wait()
    assert router._sync.status().syncs == 2  # the first at construction, then this one
    assert sum(s.calls for s in Router(POOL, store=store).stats().values()) == 6


def test_the_shared_prior_head_is_shared_as_the_sum_of_every_routers_evidence() -> None:
    pool = [Candidate(name=n, input_price=p, output_price=p) for n, p in (("a", 1), ("b", 4))]
    store = MemoryStore(name="t", sync_every=10_000)  # syncs only when told
    routers = [
        Router(pool, LinUCB(shared_prior=True, seed=i), store=store, seed=i) for i in range(2)
    ]
    rng = np.random.default_rng(5)
    queries = ("a short question?", "def f(x):\n    return x", "Which is prime? A) 4 B) 7")
    for t in range(200):
        router = routers[t % 2]
        decision = router.route(queries[t % 3])
        router.record(decision, Feedback(quality=float(rng.random() < 0.6)))
    reg = routers[0].policy.regularization  # type: ignore[attr-defined]
    own = []
    for router in routers:
        state = router.policy.state_dict()["state"]
        eye = reg * np.eye(len(state["shared_b"]))
        own.append({f: np.asarray(state[f]) for f in ("shared_A", "shared_b", "shared_s")})
        own[-1]["shared_A"] = own[-1]["shared_A"] - eye
        assert own[-1]["shared_s"][-1] > 0  # the relative price is a feature of the head
    _flush(routers)
    for router in routers:
        state = router.policy.state_dict()["state"]
        eye = reg * np.eye(len(state["shared_b"]))
        np.testing.assert_allclose(
            np.asarray(state["shared_A"]) - eye, own[0]["shared_A"] + own[1]["shared_A"], atol=1e-9
        )
        for f in ("shared_b", "shared_s"):
            np.testing.assert_allclose(state[f], own[0][f] + own[1][f], atol=1e-9)
        inverse = np.linalg.inv(np.asarray(state["shared_A"]))
        np.testing.assert_allclose(state["shared_A_inv"], inverse, atol=1e-9)
