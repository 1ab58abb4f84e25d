"""A trained router (``pickllm train``) used online through Router, ChatPickLLM and PickLLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pickllm import Candidate, Feedback, Router
from pickllm.cli import main
from pickllm.data import OutcomeTable, load_outcomes
from pickllm.learn import LearnedPolicy, load_trained, train


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    return load_outcomes("routerbench_subset")


@pytest.fixture(scope="module")
def trained_dir(table: OutcomeTable, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = table.rows(split="train")[::4]
    router = train(table, "zooter", rows=rows, learner="logistic", ensemble=1, seed=0)
    return router.save(tmp_path_factory.mktemp("zooter"))


def test_router_routes_with_a_trained_router_and_survives_save(
    table: OutcomeTable, trained_dir: Path, tmp_path: Path
) -> None:
    pool = [Candidate(name=m) for m in table.models]
    test_rows = table.rows(split="test")[:30]
    router = Router(pool, LearnedPolicy(scorer=str(trained_dir), seed=0))
    picks = [router.route(table.prompts[i]).candidate.name for i in test_rows]
    assert set(picks) <= set(table.models)
    decision = router.route(table.prompts[test_rows[0]])
    assert router.record(decision, Feedback(quality=1.0, latency_s=0.5)) is not None
    path = tmp_path / "router.json"
    router.save(path)
    loaded = Router.load(path)
    again = [loaded.route(table.prompts[i]).candidate.name for i in test_rows]
    assert again == picks


def test_router_accepts_a_trained_router_object(table: OutcomeTable, trained_dir: Path) -> None:
    trained = load_trained(trained_dir)
    router = Router([Candidate(name=m) for m in table.models], trained, seed=0)
    assert isinstance(router.policy, LearnedPolicy)
    i = int(table.rows(split="test")[0])
    # Quality only (lam=0): the policy routes to the arg-max of the predicted quality.
    predicted = trained.predict_quality([table.prompts[i]])[0]
    assert router.route(table.prompts[i]).candidate.name == table.models[int(np.argmax(predicted))]


def test_cli_train_writes_a_loadable_router(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trained"
    code = main(
        [
            "train",
            "--data",
            "llmrouter_9llm",
            "--policy",
            "selectllm",
            "--split-column",
            "fold",
            "--test-split",
            "0",
            "--param",
            'learner="logistic"',
            "--param",
            "ensemble=1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "trained selectllm" in capsys.readouterr().out
    trained = load_trained(out)
    assert len(trained.models) == 9
    assert main(["train", "--policy", "zooter", "--param", "nope=1", "--out", str(out)]) == 2
