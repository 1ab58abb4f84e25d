"""A live Router's decision log: what it writes, when, and that ``pickllm.ope`` reads it."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, Feedback, Router, make_policy
from pickllm.engine.settings import RoutingSettings
from pickllm.ope import DecisionLog, DecisionLogWarning, evaluate, read_log
from pickllm.policies.features import structural_features

POOL = (Candidate(name="a"), Candidate(name="b"), Candidate(name="c"))
WORD = "zebracorn"  # a word of every query: it must not reach the file


def _query(rng: np.random.Generator) -> tuple[str, bool]:
    """A maths query (digits) or a prose one; which model is best depends on it."""
    if rng.random() < 0.5:
        a, b = rng.integers(100, 999, size=2)
        return f"{WORD}: what is {a} * {b} + {a}?", True
    return f"{WORD}, tell me a short story about a cat and a dog", False


def _quality(name: str, maths: bool, rng: np.random.Generator) -> float:
    p = {"a": 0.8 if maths else 0.2, "b": 0.5, "c": 0.2 if maths else 0.8}[name]
    return float(rng.random() < p)


def _stream(router: Router, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        query, maths = _query(rng)
        d = router.route(query, key="maths" if maths else "prose")
        router.record(d, Feedback(latency_s=0.1, quality=_quality(d.candidate.name, maths, rng)))


def test_a_live_thompson_log_round_trips_into_evaluate(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    router = Router(POOL, "thompson", seed=0, decision_log=path)
    _stream(router, 600, seed=1)
    text = path.read_text(encoding="utf-8")
    assert WORD not in text
    assert "query" not in json.loads(text.splitlines()[0])
    log = read_log(path)
    assert len(log) == 600
    assert all(r.context.key in {"maths", "prose"} for r in log)
    # The features are the structural ones without the bias term, as the policies use them.
    assert len(log[0].context.features or ()) == len(structural_features("")) - 1
    for method in ("dr", "ips", "snips"):
        est = evaluate(make_policy("linear_thompson", seed=2), log, method=method, learn=True)
        assert math.isfinite(est.value)
        assert est.low < est.value < est.high
        assert est.n == 600
    # A context-aware target beats the logger's own (context-free) reward on this stream.
    logged_mean = float(np.mean([r.reward for r in log]))
    dr = evaluate(make_policy("linear_thompson", seed=2), log, method="dr", learn=True)
    assert dr.value > logged_mean


def test_include_query_logs_the_text(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    router = Router(POOL, "random", seed=0, decision_log=DecisionLog(path, include_query=True))
    _stream(router, 5, seed=1)
    assert WORD in path.read_text(encoding="utf-8")
    assert all(WORD in r.context.query for r in read_log(path))


def test_given_features_are_logged_as_given(tmp_path: Path) -> None:
    from pickllm import Context

    path = tmp_path / "log.jsonl"
    router = Router(POOL, "random", seed=0, decision_log=path)
    d = router.route(Context(query="q", features=(0.25, 0.5), candidates=POOL[:2]))
    router.record(d, Feedback(latency_s=0.1, quality=1.0))
    (rec,) = read_log(path)
    assert rec.context.features == (0.25, 0.5)
    assert [c.name for c in rec.context.candidates] == ["a", "b"]
    assert rec.propensity == pytest.approx(d.probability)


def test_a_delayed_score_is_logged_when_it_arrives_and_an_expiry_without_it(
    tmp_path: Path,
) -> None:
    now = [0.0]
    path = tmp_path / "log.jsonl"
    router = Router(POOL, "thompson", seed=0, decision_log=path, clock=lambda: now[0])
    first = router.route("x")
    second = router.route("y")
    router.record(first, Feedback(latency_s=0.1), await_score=True)
    router.record(second, Feedback(latency_s=0.1), await_score=True)
    assert path.read_text(encoding="utf-8") == ""
    reward = router.feedback(first.decision_id, 1.0)
    (rec,) = read_log(path)
    assert rec.reward == reward
    now[0] = 10_000.0
    assert router.expire() == 1
    assert len(read_log(path)) == 2


def test_only_the_chosen_candidate_is_logged_not_its_fallback(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    router = Router(POOL, "random", seed=0, decision_log=path)
    d = router.route("x")
    router.record(d, Feedback(latency_s=0.1, error="Timeout"))
    other = next(c.name for c in d.ranking if c.name != d.candidate.name)
    router.record(d, Feedback(latency_s=0.1, quality=1.0, candidate=other))
    (rec,) = read_log(path)
    assert (rec.chosen, rec.reward) == (d.candidate.name, 0.0)


def test_concurrent_threads_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = DecisionLog(path)
    routers = [Router(POOL, "thompson", seed=i, decision_log=log) for i in range(2)]

    def work(i: int) -> None:
        _stream(routers[i % 2], 150, seed=i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(read_log(path)) == 600


def test_a_bad_path_is_refused_at_construction_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="decision_log"):
        Router(POOL, decision_log=tmp_path / "missing" / "log.jsonl")
    with pytest.raises(ConfigError, match="decision_log"):
        Router(POOL, decision_log=tmp_path)  # a directory
    with pytest.raises(ConfigError, match="decision_log"):
        Router(POOL, decision_log=42)  # type: ignore[arg-type]


def test_a_failing_write_warns_and_leaves_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    log = DecisionLog(path)
    router = Router(POOL, "random", seed=0, decision_log=log)
    _stream(router, 2, seed=0)
    before = path.read_bytes()
    real_write = os.write
    log_fd = log._fd

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        if fd != log_fd:
            return real_write(fd, data)
        if len(data) > 10:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.warns(DecisionLogWarning, match="No space left"):
        _stream(router, 1, seed=5)
    monkeypatch.undo()
    assert path.read_bytes() == before
    _stream(router, 1, seed=6)
    assert len(read_log(path)) == 3
    log.close()
    with pytest.warns(DecisionLogWarning, match="closed"):
        _stream(router, 1, seed=7)


def test_routing_settings_pass_the_log_to_the_router(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    settings = RoutingSettings(prices={"a": (1.0, 1.0), "b": (2.0, 2.0)}, decision_log=path)
    engine = settings.build_engine(["a", "b"], {})
    log = engine.router.decision_log
    assert log is not None
    assert log.path == path
    with pytest.raises(ConfigError, match="decision_log"):
        RoutingSettings(router=Router(POOL), decision_log=path).build_engine(["a", "b", "c"], {})


def test_a_loaded_router_takes_a_decision_log(tmp_path: Path) -> None:
    state = tmp_path / "router.json"
    Router(POOL, "thompson", seed=0).save(state)
    path = tmp_path / "log.jsonl"
    router = Router.load(state, decision_log=path)
    _stream(router, 3, seed=0)
    assert len(read_log(path)) == 3
    with pytest.raises(ConfigError, match="decision_log"):
        Router.load(state, decision_log=tmp_path / "missing" / "log.jsonl")


def test_the_file_is_closed_with_the_log(tmp_path: Path) -> None:
    import gc

    log = DecisionLog(tmp_path / "log.jsonl")
    closer = log._closer
    assert closer.alive
    del log
    gc.collect()
    assert not closer.alive
