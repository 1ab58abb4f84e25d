from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pickllm import Candidate, Context, Decision, Feedback, Plan
from pickllm.bench import run_bench
from pickllm.data import load_outcomes
from pickllm.errors import ConfigError
from pickllm.learn import (
    HashedNgramFeaturizer,
    LearnedOffline,
    LearnedPolicy,
    SelectLLM,
    Zooter,
    offline_routers,
    train,
)
from pickllm.router import Router, policy_config, policy_from_config
from pickllm.testing import check_policy, tiny_scorer_dir

MODELS = ("cheap", "strong")
TEXTS = ["easy question number {}".format, "hard proof about topic {}".format]


def _scorer(**kw: object) -> SelectLLM:
    texts = [TEXTS[i % 2](i) for i in range(120)]
    # "cheap" solves the easy half, "strong" solves everything.
    quality = np.array([[1.0 - (i % 2), 1.0] for i in range(120)])
    cost = np.tile([1e-4, 1e-2], (120, 1))
    params: dict[str, object] = {
        "featurizer": HashedNgramFeaturizer(n_features=512),
        "learner": "logistic",
        "learning_rate": 0.05,
        "seed": 0,
        **kw,
    }
    return SelectLLM(**params).fit(texts, quality, MODELS, cost=cost)  # type: ignore[arg-type]


POOL = (
    Candidate(name="cheap", input_price=0.1, output_price=0.1),
    Candidate(name="strong", input_price=10.0, output_price=30.0),
)


def test_policy_passes_the_conformance_suite() -> None:
    check_policy(LearnedPolicy(scorer=tiny_scorer_dir()))


def test_quality_only_and_cost_aware_choices() -> None:
    router = _scorer()
    quality_only = LearnedPolicy(scorer=router, seed=0)
    frugal = LearnedPolicy(scorer=router, lam=60.0, seed=0)
    easy = Context(query="easy question number 999", candidates=POOL)
    hard = Context(query="hard proof about topic 999", candidates=POOL)
    # Both solve easy questions with certainty: the quality-only route may pick either, the
    # cost-aware one must take the cheap model; hard questions need the strong model.
    assert frugal.select(easy).candidate.name == "cheap"
    assert quality_only.select(hard).candidate.name == "strong"
    assert frugal.select(hard).candidate.name == "strong"
    decision = frugal.select(easy)
    assert decision.scores is not None
    assert decision.scores[0] >= decision.scores[1]


def test_budget_mixes_ties_with_the_policy_generator() -> None:
    router = _scorer()
    _q, c = router.training_predictions()
    budget = float(c[:, 0].mean() + 0.25 * (c[:, 1] - c[:, 0]).mean())
    fit = router.fit_budget(budget)
    assert fit.cost == pytest.approx(budget)
    policy = LearnedPolicy(scorer=router, budget=budget, seed=0)
    # On the queries the budget was fitted on, the spend matches it (in expectation).
    queries = [TEXTS[i % 2](i) for i in range(120)] * 3
    picks = [policy.select(Context(query=q, candidates=POOL)).candidate.name for q in queries]
    spent = np.mean([1e-4 if p == "cheap" else 1e-2 for p in picks])
    assert spent == pytest.approx(budget, rel=0.1)
    assert 0 < picks.count("strong") < len(picks) / 2
    again = LearnedPolicy(scorer=router, budget=budget, seed=0)
    assert picks[:50] == [
        again.select(Context(query=q, candidates=POOL)).candidate.name for q in queries[:50]
    ]


def test_unknown_candidates_rank_last_and_all_unknown_falls_back_to_cheapest() -> None:
    policy = LearnedPolicy(scorer=_scorer(), seed=0)
    stranger = Candidate(name="stranger", input_price=0.01, output_price=0.01)
    d = policy.select(Context(query="hard proof about topic 5", candidates=(stranger, *POOL)))
    assert d.candidate.name == "strong"
    assert d.ranking[-1].name == "stranger"
    other = Candidate(name="other", input_price=1.0, output_price=1.0)
    d = policy.select(Context(query="anything", candidates=(other, stranger)))
    assert d.candidate.name == "stranger"


def test_selectllm_ensemble_plan_and_aggregation() -> None:
    router = _scorer(extractor="choice", selection="max_conf")
    policy = LearnedPolicy(scorer=router, subset_size=2, seed=0)
    d = policy.select(Context(query="easy question number 3", candidates=POOL))
    assert d.kind == "ensemble"
    assert {m.name for m in d.members} == {"cheap", "strong"}
    weights = policy.member_weights(d)
    assert len(weights) == 2
    assert all(0.0 <= w <= 1.0 for w in weights)
    answers = ["B", "B)", "The answer is (A)"]
    assert policy.aggregate(answers, [0.2, 0.2, 0.9]) == 0  # max_conf: a plain majority
    weighted = LearnedPolicy(scorer=_scorer(extractor="choice"), subset_size=2, seed=0)
    assert weighted.aggregate(answers, [0.2, 0.2, 0.9]) == 2  # weighted_max_conf
    with pytest.raises(ConfigError):
        policy.aggregate([])


def test_router_aggregate_weights_the_vote_by_the_members_confidence() -> None:
    scorer = _scorer(extractor="choice")  # weighted_max_conf, the default selection
    policy = LearnedPolicy(scorer=scorer, subset_size=3, seed=0)
    router = Router(POOL, policy)
    a, b, c = (Candidate(name=n) for n in ("a", "b", "c"))
    decision = Decision(
        decision_id="d",
        candidate=a,
        ranking=(a, b, c),
        probability=1.0,
        policy="learned",
        plan=Plan(kind="ensemble", members=(a, b, c)),
        scores=(0.98, 0.02, 0.02),
    )
    assert policy.member_weights(decision) == [0.98, 0.02, 0.02]
    answers = ["(A)", "(B)", "The answer is B"]
    assert router.aggregate(answers, decision) == 0  # the confident member's A wins
    assert router.aggregate(answers) == 1  # without the decision: a plain majority for B


def test_policy_in_a_router_by_path_survives_config_round_trip(tmp_path: Path) -> None:
    router = _scorer()
    path = str(router.save(tmp_path / "learned"))
    policy = LearnedPolicy(scorer=path, lam=60.0, seed=0)
    rebuilt = policy_from_config(json.loads(json.dumps(policy_config(policy))))
    assert isinstance(rebuilt, LearnedPolicy)
    assert rebuilt.scorer == path
    r = Router(POOL, policy=rebuilt)
    decision = r.route("easy question number 42")
    assert decision.candidate.name == "cheap"
    reward = r.record(decision, Feedback(latency_s=0.2, quality=1.0))
    assert reward is not None
    assert 0.0 <= reward <= 1.0


def test_policy_validates() -> None:
    with pytest.raises(ConfigError, match="trained"):
        LearnedPolicy(scorer=SelectLLM())
    with pytest.raises(TypeError, match="scorer must be a trained QueryScorer"):
        LearnedPolicy(scorer=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lam"):
        LearnedPolicy(scorer=_scorer(), lam=-1.0)
    with pytest.raises(ConfigError, match="budget"):
        LearnedPolicy(scorer=_scorer(), budget=-1.0)
    with pytest.raises(ConfigError, match="subset_size"):
        LearnedPolicy(scorer=_scorer(), subset_size=0)


def test_train_on_bundled_data_and_bench_adapter() -> None:
    table = load_outcomes("routerbench_subset")
    rows = table.rows(split="train")
    router = train(table, "zooter", rows=rows[::4], tag_beta=0.0, max_epochs=20, seed=0)
    assert router.models == table.models
    assert isinstance(router, Zooter)
    with pytest.raises(ConfigError, match="unknown learned policy"):
        train(table, "forest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="either rows"):
        train(table, rows=rows, split="train")
    test = table.rows(split="test")
    adapter = LearnedOffline("zooter", lambda: Zooter(tag_beta=0.0, max_epochs=20, seed=0))
    adapter.fit(table, rows[::4])
    q_train, c_train = adapter.predict(table, rows[::4])
    assert q_train.shape == c_train.shape == (len(rows[::4]), table.n_models)
    q, c = adapter.predict(table, test)
    assert q.shape == (len(test), table.n_models)
    # The three tasks have different best models and very different costs: the router
    # recovers them from the text alone (no task label at prediction time).
    tasks = np.asarray(table.tasks)[test]
    for task in ("arc-challenge", "mbpp", "winogrande"):
        rows_t = tasks == task
        assert np.ptp(q[rows_t].mean(axis=0) - q[~rows_t].mean(axis=0)) > 0.05
    assert c.mean(axis=0).argmax() == table.models.index("gpt-4-1106-preview")


def test_offline_routers_are_fresh_bench_routers() -> None:
    factories = offline_routers()
    assert {"selectllm", "zooter"} <= set(factories)
    a, b = factories["selectllm"](), factories["selectllm"]()
    assert a is not b
    assert a.name == "selectllm"


def test_learned_router_in_run_bench_beats_single_models_on_llmrouter() -> None:
    from pickllm.bench import OFFLINE_ROUTERS

    table = load_outcomes("llmrouter_9llm")
    small = table.subset(table.rows(exclude_fold=4))
    OFFLINE_ROUTERS["test_learned"] = lambda: LearnedOffline(
        "test_learned", lambda: SelectLLM(tag_beta=0.0, max_epochs=30, seed=0)
    )
    try:
        report = run_bench(small, policies=["test_learned"], split_column="fold", test_split=0)
    finally:
        del OFFLINE_ROUTERS["test_learned"]
    learned = report.results["test_learned"].accuracy
    assert learned > report.results["best_single"].accuracy + 0.02


def test_public_api_is_pinned() -> None:
    import pickllm.learn

    assert pickllm.learn.__all__ == [
        "EXTRACTORS",
        "MLP",
        "ROUTER_KINDS",
        "SELECTION_POLICIES",
        "ContextSignals",
        "CostModel",
        "Featurizer",
        "HashedNgramFeaturizer",
        "LangChainEmbeddings",
        "LearnedOffline",
        "LearnedPolicy",
        "LlamaIndexEmbeddings",
        "LogisticRegression",
        "Prediction",
        "QueryScorer",
        "SelectLLM",
        "TrainedRouter",
        "Vote",
        "VoteResult",
        "Zooter",
        "choice_letter",
        "count_turns",
        "exact_string",
        "get_extractor",
        "load_router",
        "load_trained",
        "number",
        "offline_routers",
        "save_router",
        "scorer_prior",
        "select_subset",
        "soft_labels",
        "train",
    ]
    for name in pickllm.learn.__all__:
        assert getattr(pickllm.learn, name) is not None
