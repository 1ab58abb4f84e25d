"""``pickllm ope`` on a live router's log, and ``pickllm bench --policy-param``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, Feedback, Router
from pickllm.bench import run_bench
from pickllm.cli import main
from pickllm.data import load_outcomes
from pickllm.ope import evaluate, read_log
from pickllm.registry import make_policy

POOL = (Candidate(name="a"), Candidate(name="b"))
USER_CSV = "\n".join(
    [
        "prompt_id,task,split,fold,prompt,model,quality,cost_usd",
        *(
            f"p{i},{'a' if i % 2 else 'b'},{'test' if i >= 12 else 'train'},{i % 3},"
            f"question {i},{model},{(i * (j + 1)) % 3 == 0:d},{0.001 * (j + 1)}"
            for i in range(20)
            for j, model in enumerate(("alpha", "beta"))
        ),
    ]
)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.jsonl"
    router = Router(POOL, "thompson", seed=0, decision_log=path)
    rng = np.random.default_rng(3)
    for i in range(300):
        d = router.route("what is 12 * 7?" if i % 2 else "write a poem about the sea")
        good = (d.candidate.name == "a") == bool(i % 2)
        router.record(
            d, Feedback(latency_s=0.1, quality=float(rng.random() < (0.8 if good else 0.3)))
        )
    return path


@pytest.fixture
def user_csv(tmp_path: Path) -> Path:
    path = tmp_path / "mine.csv"
    path.write_text(USER_CSV + "\n", encoding="utf-8")
    return path


def test_ope_prints_each_estimate_with_its_interval(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ope", str(log_path), "--policy", "linear_thompson", "--method", "all"]) == 0
    out = capsys.readouterr().out
    assert "300 decisions" in out
    rows = re.findall(r"linear_thompson (\w+): ([\d.]+) \[([\d.-]+), ([\d.]+)\]", out)
    assert [r[0] for r in rows] == ["dr", "ips", "snips"]
    for _, value, low, high in rows:
        assert math.isfinite(float(value))
        assert float(low) <= float(value) <= float(high)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--policy", "lin_ucb", "--param", "bogus=1"], "--param"),
        (["--policy", "lin_ucb", "--param", "exploration=-1"], "exploration"),
        (["--policy", "ucb1", "--confidence", "1.5"], "--confidence"),
        (["--policy", "ucb1", "--clip", "0"], "--clip: must be a finite number > 0, got 0.0"),
        (["--policy", "ucb1", "--clip", "nan"], "--clip"),
        (["--policy", "ucb1", "--method", "ips", "--clip", "5"], "--method dr only"),
    ],
)
def test_ope_errors_are_one_line_naming_the_option(
    log_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(["ope", str(log_path), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_ope_clip_reaches_the_doubly_robust_estimate(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def dr(*extra: str) -> tuple[float, float]:
        argv = ["ope", str(log_path), "--policy", "linear_thompson", "--no-learn", *extra]
        assert main(argv) == 0
        found = re.search(r"dr: ([\d.]+) \[([\d.-]+), ([\d.]+)\]", capsys.readouterr().out)
        assert found is not None
        return float(found.group(1)), float(found.group(3)) - float(found.group(2))

    plain, clipped = dr(), dr("--clip", "1")
    log = read_log(log_path)
    expected = evaluate(make_policy("linear_thompson", seed=0), log, method="dr", clip=1.0)
    assert clipped[0] == pytest.approx(expected.value, abs=1e-4)
    assert clipped != plain


def test_ope_refuses_a_missing_or_malformed_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ope", str(tmp_path / "none.jsonl"), "--policy", "ucb1"]) == 2
    assert "LOG" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert main(["ope", str(empty), "--policy", "ucb1"]) == 2
    assert "no decision record" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "a"}\n', encoding="utf-8")
    assert main(["ope", str(bad), "--policy", "ucb1"]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err
    assert "Traceback" not in err


def test_bench_policy_params_reach_the_policy(user_csv: Path) -> None:
    table = load_outcomes(user_csv)

    def reward(params: dict[str, dict[str, object]]) -> float:
        report = run_bench(table, policies=["ucb1"], seeds=1, policy_params=params)
        value = report.results["ucb1"].mean_reward
        assert value is not None
        return value

    assert reward({"ucb1": {"exploration": 0.0}}) != reward({"ucb1": {"exploration": 50.0}})


def test_bench_cli_accepts_a_policy_param(
    user_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--data", str(user_csv), "--policies", "Thompson", "--seeds", "1", "--quiet"]
    assert main([*argv, "--policy-param", "thompson.prior_alpha=2"]) == 0
    out = capsys.readouterr().out
    assert "thompson" in out
    # The report says which hyperparameters were given, so a tuned row is never mistaken
    # for a default one.
    assert "policy parameters given: thompson prior_alpha=2" in " ".join(out.split())
    assert main(argv) == 0
    assert "policy parameters given" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("param", "needles"),
    [
        (
            "thompson.alpha=2",
            ["--policy-param", "'thompson'", "'alpha'", "prior_alpha, prior_beta"],
        ),
        ("ucb1.exploration=1", ["--policy-param", "'ucb1'", "not among the online policies"]),
        ("thompson.prior_alpha=-1", ["--policy-param", "prior_alpha", "-1"]),
        ("thompson=2", ["--policy-param", "NAME.KEY=VALUE"]),
    ],
)
def test_bench_policy_param_errors_name_option_policy_and_keys(
    user_csv: Path, capsys: pytest.CaptureFixture[str], param: str, needles: list[str]
) -> None:
    argv = ["bench", "--data", str(user_csv), "--policies", "thompson", "--seeds", "1", "--quiet"]
    assert main([*argv, "--policy-param", param]) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err
    assert "Traceback" not in err


def test_bench_help_documents_policy_param(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--help"]) == 0
    assert "--policy-param NAME.KEY=VALUE" in capsys.readouterr().out


def test_run_bench_refuses_unknown_keys(user_csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy_params: policy 'ucb1' .* allowed: exploration"):
        run_bench(load_outcomes(user_csv), policies=["ucb1"], policy_params={"ucb1": {"c": 1.0}})
