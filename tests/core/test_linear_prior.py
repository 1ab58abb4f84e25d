"""A reward prior (``LinearPolicy.set_prior``): a scorer's predictions as the heads' prior mean.

Expected numbers are recomputed from the documented formula: a model the prior predicts at
``p(x)`` is predicted at ``p(x) + x^T A^-1 (b - c s)``, where a reward ``r`` learned against
the prior adds ``x (r - p(x))`` to ``b`` and ``x`` to ``A``'s ``x x^T`` sum only (not to
``s``). Contexts carry explicit features, so ``x = (1, *features)`` (``key_buckets=0``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, Context, StateError
from pickllm.policies.lin_ucb import LinUCB
from pickllm.policies.linear_thompson import LinearThompson

A = Candidate(name="a", input_price=1.0, output_price=1.0)
B = Candidate(name="b", input_price=2.0, output_price=2.0)
C = Candidate(name="c", input_price=3.0, output_price=3.0)
POOL = (A, B, C)


def ctx(feature: float, query: str = "") -> Context:
    return Context(query=query, candidates=POOL, features=(feature,))


def table_prior(values: Mapping[str, Mapping[str, float]]) -> Any:
    """A prior looking the predicted rewards up by the context's query."""

    def prior(context: Context) -> Mapping[str, float]:
        return values[context.query]

    return prior


def flat(predicted: Mapping[str, tuple[float, float]]) -> list[float]:
    """``predict()``'s means and widths in one list, for ``pytest.approx``."""
    return [v for name in sorted(predicted) for v in predicted[name]]


def random_scorer(rng: np.random.Generator, n: int) -> dict[str, dict[str, float]]:
    return {f"q{i}": {c.name: float(rng.random()) for c in POOL} for i in range(n)}


# ================================================================ no evidence: the prior
@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_without_evidence_the_mean_is_the_prior_exactly(cls: type[LinUCB | LinearThompson]) -> None:
    rng = np.random.default_rng(0)
    scorer = random_scorer(rng, 20)
    policy = cls(key_buckets=0, seed=0)
    policy.set_prior(table_prior(scorer))
    for q, predicted in scorer.items():
        got = policy.predict(ctx(float(rng.normal()), q))
        assert {n: m for n, (m, _) in got.items()} == pytest.approx(predicted, abs=1e-12)


def test_before_any_update_lin_ucb_picks_the_prior_argmax() -> None:
    rng = np.random.default_rng(1)
    scorer = random_scorer(rng, 50)
    policy = LinUCB(key_buckets=0, seed=0)
    policy.set_prior(table_prior(scorer))
    for q, predicted in scorer.items():
        best = max(predicted, key=predicted.__getitem__)
        assert policy.select(ctx(float(rng.normal()), q)).candidate.name == best


def test_linear_thompson_draws_around_the_prior() -> None:
    # A clear favourite of the prior is drawn highest almost always with a narrow width.
    scorer = {"q": {"a": 0.2, "b": 0.8, "c": 0.5}}
    policy = LinearThompson(key_buckets=0, exploration=0.05, seed=3)
    policy.set_prior(table_prior(scorer))
    picks = [policy.select(ctx(0.0, "q")).candidate.name for _ in range(200)]
    assert picks.count("b") >= 198


# ================================================================ learning the residual
def test_a_reward_teaches_the_head_the_priors_error() -> None:
    prior = {"q": {"a": 0.7, "b": 0.4, "c": 0.1}}
    policy = LinUCB(key_buckets=0, regularization=2.0, seed=0)
    policy.set_prior(table_prior(prior))
    x = np.array([1.0, 3.0])
    policy.update(policy.select(ctx(3.0, "q")), 0.2)  # 'a', the prior's best, earns 0.2
    # Ridge on the residual 0.2 - 0.7, A = 2 I + x x^T: the mean at y is 0.7 + y^T A^-1 x r.
    a_inv = np.linalg.inv(2.0 * np.eye(2) + np.outer(x, x))
    for y in (np.array([1.0, 3.0]), np.array([1.0, -1.0])):
        expected = 0.7 + float(y @ a_inv @ x) * (0.2 - 0.7)
        assert policy.predict(ctx(float(y[1]), "q"))["a"][0] == pytest.approx(expected)
    # The other heads are still the prior (c's centre moved; the prior does not).
    assert policy.predict(ctx(3.0, "q"))["b"][0] == pytest.approx(0.4)
    st = policy.state_dict()["state"]
    i = st["models"].index("a")
    np.testing.assert_allclose(st["b"][i], (0.2 - 0.7) * x)
    np.testing.assert_allclose(st["s"][i], 0.0)
    np.testing.assert_allclose(st["prior_s"][i], x)
    assert st["prior_used"] is True


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_online_rewards_override_the_prior_where_it_is_wrong(
    cls: type[LinUCB | LinearThompson],
) -> None:
    # The scorer is right about code (a) and wrong about poems (it says a; c is best).
    scorer = {
        "code": {"a": 0.8, "b": 0.5, "c": 0.4},
        "poem": {"a": 0.7, "b": 0.5, "c": 0.6},
    }
    truth = {"code": {"a": 0.8, "b": 0.5, "c": 0.4}, "poem": {"a": 0.2, "b": 0.5, "c": 0.9}}
    feature = {"code": 1.0, "poem": -1.0}
    policy = cls(key_buckets=0, regularization=5.0, exploration=0.1, seed=0)
    policy.set_prior(table_prior(scorer))
    env = np.random.default_rng(0)
    code_picks = []
    for t in range(300):
        q = ("code", "poem")[t % 2]
        decision = policy.select(ctx(feature[q], q))
        if q == "code":
            code_picks.append(decision.candidate.name)
        noise = 0.1 * float(env.standard_normal())
        policy.update(decision, min(max(truth[q][decision.candidate.name] + noise, 0.0), 1.0))
    assert policy.select(ctx(-1.0, "poem")).candidate.name == "c"
    assert policy.select(ctx(1.0, "code")).candidate.name == "a"
    assert code_picks.count("a") >= 0.9 * len(code_picks)  # where it was right, kept


def test_without_a_prior_the_same_rewards_learn_centred_heads() -> None:
    # The prior changes the prediction's base, not the centred learning of other rewards:
    # a candidate the prior leaves out is learned and predicted exactly as without a prior.
    with_prior = LinUCB(key_buckets=0, prior_mean=0.5, seed=0)
    with_prior.set_prior(lambda context: {"a": 0.9})
    plain = LinUCB(key_buckets=0, prior_mean=0.5, seed=0)
    for policy in (with_prior, plain):
        for f, r in ((1.0, 0.3), (2.0, 0.6), (-1.0, 0.1)):
            d = policy.select(Context(candidates=(B, C), features=(f,)))
            policy.update(d, r)
    for f in (0.0, 1.5):
        got = with_prior.predict(Context(candidates=(B, C), features=(f,)))
        expected = plain.predict(Context(candidates=(B, C), features=(f,)))
        assert flat(got) == pytest.approx(flat(expected))
    assert with_prior.predict(Context(candidates=(A,), features=(1.0,)))["a"][0] == 0.9


def test_a_warm_start_with_the_priors_own_predictions_adds_confidence_only() -> None:
    rng = np.random.default_rng(2)
    scorer = random_scorer(rng, 30)
    contexts = [ctx(float(rng.normal()), q) for q in scorer]
    rewards = np.array([[scorer[q][c.name] for c in POOL] for q in scorer])
    policy = LinUCB(key_buckets=0, seed=0)
    policy.set_prior(table_prior(scorer))
    before = policy.predict(contexts[0])
    policy.warm_start(contexts, rewards, [c.name for c in POOL], weight=2.0)
    after = policy.predict(contexts[0])
    for name in before:
        assert after[name][0] == pytest.approx(before[name][0], abs=1e-12)
        assert after[name][1] < before[name][1] / 5.0
    st = policy.state_dict()["state"]
    np.testing.assert_allclose(st["b"], 0.0, atol=1e-12)
    np.testing.assert_allclose(st["s"], 0.0)


def test_a_warm_start_learns_the_departures_from_the_prior() -> None:
    policy = LinUCB(key_buckets=0, regularization=1.0, seed=0)
    policy.set_prior(lambda context: {"a": 0.5, "b": 0.5})
    contexts = [ctx(1.0, "q")] * 10
    policy.warm_start(contexts, np.tile([0.9, 0.1], (10, 1)), ["a", "b"], weight=1.0)
    x = np.array([1.0, 1.0])
    a_inv = np.linalg.inv(np.eye(2) + 10 * np.outer(x, x))
    got = policy.predict(Context(candidates=(A, B), features=(1.0,)))
    assert got["a"][0] == pytest.approx(0.5 + float(x @ a_inv @ x) * 10 * 0.4)
    assert got["b"][0] == pytest.approx(0.5 - float(x @ a_inv @ x) * 10 * 0.4)


def test_discounting_forgets_rewards_learned_against_the_prior_too() -> None:
    policy = LinUCB(key_buckets=0, regularization=1.0, discount=0.5, seed=0)
    policy.set_prior(lambda context: {"a": 0.5})
    one = Context(candidates=(A,), features=(0.0,))
    for r in (1.0, 0.0):
        policy.update(policy.select(one), r)
    x = np.array([1.0, 0.0])
    # A = 0.5 (0.5 I + 0.5 I + x x^T) + 0.5 I + x x^T = I + 1.5 x x^T; b = 0.5 * 0.5 x - 0.5 x.
    a = np.eye(2) + 1.5 * np.outer(x, x)
    b = 0.5 * 0.5 * x - 0.5 * x
    assert policy.predict(one)["a"][0] == pytest.approx(0.5 + float(x @ np.linalg.solve(a, b)))
    st = policy.state_dict()["state"]
    np.testing.assert_allclose(st["prior_s"][0], 1.5 * x)


def test_a_shifted_change_marks_the_rewards_learned_against_the_prior_down() -> None:
    policy = LinUCB(
        key_buckets=0,
        regularization=1.0,
        change_threshold=0.5,
        change_delta=0.0,
        change_keep=1.0,
        change_shift=True,
        seed=0,
    )
    policy.set_prior(lambda context: {"a": 0.8})
    one = Context(candidates=(A,), features=(0.0,))
    for _ in range(20):
        policy.update(policy.select(one), 0.8)  # the prior was right
    assert policy.predict(one)["a"][0] == pytest.approx(0.8)
    while policy.changes == 0:
        policy.update(policy.select(one), 0.2)  # then the model degrades
    # Its evidence is kept, marked down by the mean shortfall: predicted well below 0.8.
    assert policy.predict(one)["a"][0] < 0.5
    assert policy.counts["a"] > 20


# ================================================================ checks and state
@pytest.mark.parametrize(
    ("returned", "match"),
    [
        ({"a": 1.5}, r"'a' must be a number in \[0, 1\], got 1.5"),
        ({"a": math.nan}, "'a' must be a number"),
        ({"b": True}, "'b' must be a number"),
        ({"c": "0.5"}, "'c' must be a number"),
        ([0.5, 0.5, 0.5], "must return a mapping"),
    ],
)
def test_a_bad_prediction_is_refused_with_the_candidate(returned: Any, match: str) -> None:
    policy = LinUCB(key_buckets=0, seed=0)
    policy.set_prior(lambda context: returned)
    with pytest.raises(ConfigError, match=match):
        policy.select(ctx(0.0))


def test_set_prior_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="callable"):
        LinUCB().set_prior(0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="shared_prior"):
        LinUCB(shared_prior=True).set_prior(lambda context: {})
    policy = LinUCB()
    prior = table_prior({})
    policy.set_prior(prior)
    assert policy.prior is prior
    assert policy.clone().prior is prior  # a fresh copy starts from the same prior
    assert policy.clone(seed=3).models == []


def test_per_context_learners_start_from_the_prior() -> None:
    from pickllm.policies import PerContext

    scorer = {"q": {"a": 0.2, "b": 0.9, "c": 0.1}}
    base = LinUCB(key_buckets=0, seed=0)
    base.set_prior(table_prior(scorer))
    policy = PerContext(policy=base, seed=0)
    context = Context(query="q", key="topic", candidates=ctx(0.0, "q").candidates)
    assert policy.select(context).candidate.name == "b"  # the prior's best, untried


def test_a_state_learned_against_a_prior_needs_it_back_to_route() -> None:
    scorer = {"q": {"a": 0.9, "b": 0.3, "c": 0.1}}
    policy = LinUCB(key_buckets=0, seed=0)
    policy.set_prior(table_prior(scorer))
    for _ in range(5):
        policy.update(policy.select(ctx(1.0, "q")), 0.6)
    saved = policy.state_dict()
    restored = LinUCB(key_buckets=0, seed=0)
    restored.load_state_dict(saved)
    with pytest.raises(ConfigError, match="set_prior"):
        restored.select(ctx(1.0, "q"))
    restored.set_prior(table_prior(scorer))
    assert flat(restored.predict(ctx(0.5, "q"))) == pytest.approx(
        flat(policy.predict(ctx(0.5, "q")))
    )
    policy.set_prior(None)  # removed after learning with it: refused as well
    with pytest.raises(ConfigError, match="set_prior"):
        policy.select(ctx(1.0, "q"))


def test_a_state_saved_before_reward_priors_still_loads() -> None:
    policy = LinUCB(key_buckets=0, seed=0)
    for f, r in ((1.0, 0.3), (2.0, 0.6)):
        policy.update(policy.select(ctx(f)), r)
    saved = policy.state_dict()
    del saved["state"]["prior_s"], saved["state"]["prior_used"]
    restored = LinUCB(key_buckets=0, seed=0)
    restored.load_state_dict(saved)
    assert flat(restored.predict(ctx(1.5))) == pytest.approx(flat(policy.predict(ctx(1.5))))
    saved["state"]["prior_used"] = 1
    with pytest.raises(StateError, match="prior_used must be a bool"):
        restored.load_state_dict(saved)


# ================================================================ a trained scorer as the prior
def _trained_scorer() -> Any:
    from pickllm.learn import SelectLLM

    texts = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
    quality = np.array([[1, 0, 0.5], [1, 0, 0.5], [0, 1, 0.5], [0, 1, 0.5]] * 10, dtype=float)
    return SelectLLM(learner="logistic", learning_rate=0.1, seed=0).fit(
        texts, quality, ["a", "b", "c"]
    )


def test_scorer_prior_is_the_weighted_predicted_quality_plus_the_offsets() -> None:
    from pickllm.learn import scorer_prior

    scorer = _trained_scorer()
    prior = scorer_prior(scorer, quality_weight=0.6, offsets={"a": 0.3, "c": -0.1})
    for query in ("add 7 and 8", "write a sonnet", ""):
        q = scorer.predict_quality([query])[0]
        expected = np.clip(0.6 * q + np.array([0.3, 0.0, -0.1]), 0.0, 1.0)
        got = prior(Context(query=query))
        assert list(got) == ["a", "b", "c"]
        assert list(got.values()) == pytest.approx(expected.tolist())
    policy = LinUCB(seed=0)
    policy.set_prior(scorer_prior(scorer))
    for query in ("add 7 and 8", "write a sonnet"):
        q = scorer.predict_quality([query])[0]
        pick = policy.select(Context(query=query, candidates=POOL)).candidate.name
        assert pick == "abc"[int(np.argmax(q))]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quality_weight": 0.0}, "quality_weight must be a finite number > 0, got 0.0"),
        ({"quality_weight": True}, "quality_weight"),
        ({"offsets": {"z": 0.1}}, r"models the scorer does not know: \['z'\]"),
        ({"offsets": {"a": math.inf}}, "offsets must be finite"),
    ],
)
def test_scorer_prior_checks_its_arguments(kwargs: dict[str, Any], match: str) -> None:
    from pickllm.learn import SelectLLM, scorer_prior

    with pytest.raises(ConfigError, match=match):
        scorer_prior(_trained_scorer(), **kwargs)
    with pytest.raises(ConfigError, match="trained QueryScorer"):
        scorer_prior(SelectLLM())


def test_routers_sharing_a_store_share_what_they_learned_against_the_prior() -> None:
    from pickllm import Feedback, Router
    from pickllm.state import MemoryStore

    pool = [Candidate(name=n) for n in ("a", "b", "c")]
    scorer = {"a short question?": {"a": 0.7, "b": 0.5, "c": 0.2}, "Why? Why?": {"a": 0.6}}
    store = MemoryStore(name="t", sync_every=10_000)  # syncs only when told
    routers = [Router(pool, LinUCB(seed=i), store=store, seed=i) for i in range(2)]
    for router in routers:
        router.policy.set_prior(table_prior(scorer))  # type: ignore[attr-defined]
    rng = np.random.default_rng(6)
    for t in range(60):
        router = routers[t % 2]
        decision = router.route(("a short question?", "Why? Why?")[t % 3 % 2])
        router.record(decision, Feedback(quality=float(rng.random() < 0.4)))
    for _ in range(2):
        for router in routers:
            router.sync()
    probe = Context(query="a short question?", candidates=tuple(pool))
    first, second = (r.policy.predict(probe) for r in routers)  # type: ignore[attr-defined]
    assert flat(first) == pytest.approx(flat(second), abs=1e-9)
    assert first["a"][0] != pytest.approx(0.7)  # learned something: 'a' earned about 0.4
    # The merged heads still hold residuals of the prior: 'a' (always in the prior) was
    # never centred, 'b' (not in the prior of the second query) was there.
    merged = routers[0].policy.state_dict()["state"]
    np.testing.assert_allclose(merged["s"][merged["models"].index("a")], 0.0)
    assert np.asarray(merged["s"][merged["models"].index("b")]).any()


def test_a_store_shares_the_sums_learned_against_the_prior_and_that_one_was_used() -> None:
    from pickllm import Feedback, Router
    from pickllm.state import MemoryStore

    pool = [Candidate(name=n) for n in ("a", "b")]
    scorer = {"q?": {"a": 0.7, "b": 0.4}}
    store = MemoryStore(name="t", sync_every=10_000)
    learner, idle = (Router(pool, LinUCB(seed=i), store=store, seed=i) for i in range(2))
    for router in (learner, idle):
        router.policy.set_prior(table_prior(scorer))  # type: ignore[attr-defined]
    for _ in range(5):
        learner.record(learner.route("q?"), Feedback(quality=0.5))
    learned = learner.policy.state_dict()["state"]
    learner.sync()
    idle.sync()
    adopted = idle.policy.state_dict()["state"]
    assert adopted["prior_used"] is True
    assert adopted["models"] == learned["models"]
    np.testing.assert_allclose(adopted["prior_s"], learned["prior_s"])
    assert np.asarray(adopted["prior_s"]).any()
    idle.policy.set_prior(None)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="learned against a reward prior"):
        idle.route("q?")


async def test_with_a_prior_async_routing_leaves_the_event_loop() -> None:
    import threading

    from pickllm import Router
    from pickllm.engine import Engine, Request
    from pickllm.testing import EchoCalls

    threads: list[threading.Thread] = []

    def prior(context: Context) -> dict[str, float]:
        threads.append(threading.current_thread())
        return {"a": 0.9, "b": 0.1}

    policy = LinUCB(seed=0)
    assert policy.blocking is False
    policy.set_prior(prior)
    assert policy.blocking is True
    engine = Engine(Router([Candidate(name="a"), Candidate(name="b")], policy=policy))
    answer = await engine.arun(Request(query="q"), EchoCalls(query="q"))
    assert answer.model == "a"
    assert threads
    assert threading.current_thread() not in threads
    policy.set_prior(None)
    assert policy.blocking is False
