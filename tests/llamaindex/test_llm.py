"""PickLLM as a LlamaIndex LLM: routing, reporting, feedback, failures, state, concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, MessageRole
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms import MockLLM
from llama_index.core.rate_limiter import BaseRateLimiter
from llama_index.core.tools import FunctionTool

from llamaindex_pickllm import PickLLM
from pickllm import Router
from pickllm.engine import RetryConfig
from pickllm.errors import ConfigError, ExecutionError, StateError, UnknownDecisionError
from pickllm.policies import Fixed, Policy
from pickllm.policies.base import Choice
from pickllm.types import Context, Decision
from tests.llamaindex.fakes import EventCounter, UsageLLM, adder

PRICES = {"small": (0.1, 0.2), "large": (5.0, 15.0)}


def usage_of(response: CompletionResponse) -> dict[str, Any]:
    raw = response.raw
    assert isinstance(raw, dict)
    usage: dict[str, Any] = raw["usage"]
    return usage


def two_usage_llms(**small: Any) -> dict[str, UsageLLM]:
    return {
        "small": UsageLLM(answer="small answer", name="small", **small),
        "large": UsageLLM(answer="large answer", name="large", input_tokens=10, output_tokens=50),
    }


class FakeClock:
    """Advances 10 ms per reading, so latencies are exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += 0.01
            return self.now


# ---------------------------------------------------------------------- construction
def test_candidates_named_by_mapping_or_model_name() -> None:
    llm = PickLLM(models=[UsageLLM(name="a"), UsageLLM(name="b")], cost=0.0)
    assert list(llm.models) == ["a", "b"]
    assert [c.name for c in llm.core_router.candidates] == ["a", "b"]


def test_duplicate_model_names_need_a_mapping() -> None:
    with pytest.raises(ConfigError, match="both named 'unknown'"):
        PickLLM(models=[MockLLM(), MockLLM()], cost=0.0)


def test_missing_price_is_an_error_when_cost_counts() -> None:
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['large'\]"):
        PickLLM(models=two_usage_llms(), prices={"small": (0.1, 0.2)})
    # without a cost weight, prices are optional
    llm = PickLLM(models=two_usage_llms(), cost=0.0)
    assert llm.core_router.candidates[1].input_price == 0.0


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        PickLLM(models={})
    with pytest.raises(TypeError, match="must be a LlamaIndex LLM"):
        PickLLM(models={"x": "not an llm"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="weight cost"):
        PickLLM(models=two_usage_llms(), prices=PRICES, cost=-1.0)
    with pytest.raises(ValueError, match="evaluate_in_background"):
        PickLLM(models=two_usage_llms(), prices=PRICES, evaluate_in_background="later")
    with pytest.raises(ConfigError, match="capabilities names 'nope'"):
        PickLLM(models=two_usage_llms(), prices=PRICES, capabilities={"nope": {}})
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        PickLLM(models=two_usage_llms(), prices=PRICES, policy="nope")
    router = Router(
        list(PickLLM(models=two_usage_llms(), prices=PRICES).core_router.candidates)[:1]
    )
    with pytest.raises(ConfigError, match="are not the models"):
        PickLLM(models=two_usage_llms(), router=router)


def test_hyperparameters_are_stored_as_given() -> None:
    llm = PickLLM(
        models=two_usage_llms(), prices=PRICES, policy="ucb1", quality=0.7, cost=0.2, seed=3
    )
    assert (llm.policy, llm.quality, llm.cost, llm.latency, llm.seed) == ("ucb1", 0.7, 0.2, 0.2, 3)
    assert llm.core_router.objective.quality == 0.7
    assert llm.core_router.policy.name == "ucb1"


# ---------------------------------------------------------------------- metadata
def test_metadata_promises_only_what_every_candidate_can_do() -> None:
    mixed = PickLLM(
        models={
            "mock": MockLLM(max_tokens=8),
            "fc": adder("fc"),
            "narrow": UsageLLM(window=1000, name="narrow"),
        },
        cost=0.0,
    )
    meta = mixed.metadata
    assert meta.context_window == 1000
    assert meta.num_output == 8
    assert meta.is_function_calling_model is False
    assert meta.is_chat_model is False
    assert meta.model_name == "pickllm"
    both_fc = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0)
    assert both_fc.metadata.is_function_calling_model is True
    assert both_fc.metadata.is_chat_model is True
    flags = {c.name: c.tool_calling for c in mixed.core_router.candidates}
    assert flags == {"mock": False, "fc": True, "narrow": False}


# ---------------------------------------------------------------------- each call routed
def test_complete_reports_model_decision_cost_and_reported_usage() -> None:
    llm = PickLLM(
        models=two_usage_llms(), prices=PRICES, policy=Fixed(model="large"), clock=FakeClock()
    )
    response = llm.complete("What is 2 + 2?")
    info = response.additional_kwargs["pickllm"]
    assert response.text == "large answer"
    assert info["model"] == "large"
    assert info["policy"] == "fixed"
    assert info["probability"] == 1.0
    assert info["plan"] == "single"
    assert info["attempts"] == 1
    # the provider's usage is kept as reported and priced: 10 * 5 + 50 * 15 per 1M
    assert usage_of(response)["prompt_tokens"] == 10
    assert usage_of(response)["completion_tokens"] == 50
    assert info["cost_usd"] == pytest.approx((10 * 5.0 + 50 * 15.0) / 1e6)
    assert info["cost_estimated"] is False
    assert info["latency_s"] == pytest.approx(0.01)
    stats = llm.stats()["large"]
    assert (stats.calls, stats.input_tokens, stats.output_tokens) == (1, 10, 50)


def test_usage_is_estimated_and_written_to_raw_when_not_reported() -> None:
    llm = PickLLM(models={"echo": MockLLM()}, cost=0.0)
    response = llm.complete("abcdefgh")  # MockLLM echoes: 8 chars -> 2 tokens each way
    assert response.raw == {
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    }
    assert response.additional_kwargs["pickllm"]["cost_estimated"] is True


def test_every_entry_point_is_routed_on_its_own() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, policy="random", seed=1)
    messages = [ChatMessage(role=MessageRole.USER, content="hello")]
    ids = [
        llm.complete("a").additional_kwargs["pickllm"]["decision_id"],
        llm.chat(messages).additional_kwargs["pickllm"]["decision_id"],
        list(llm.stream_complete("b"))[-1].additional_kwargs["pickllm"]["decision_id"],
        list(llm.stream_chat(messages))[-1].additional_kwargs["pickllm"]["decision_id"],
    ]

    async def async_calls() -> list[str]:
        out = [
            (await llm.acomplete("c")).additional_kwargs["pickllm"]["decision_id"],
            (await llm.achat(messages)).additional_kwargs["pickllm"]["decision_id"],
        ]
        completions = [c async for c in await llm.astream_complete("d")]
        out.append(completions[-1].additional_kwargs["pickllm"]["decision_id"])
        chats = [c async for c in await llm.astream_chat(messages)]
        out.append(chats[-1].additional_kwargs["pickllm"]["decision_id"])
        return out

    ids += asyncio.run(async_calls())
    assert len(set(ids)) == 8
    assert sum(s.calls for s in llm.stats().values()) == 8
    served = {s for s, st in llm.stats().items() if st.calls}
    assert served == {"small", "large"}  # random routing used both


def test_stream_tags_every_chunk_and_puts_cost_on_the_last() -> None:
    llm = PickLLM(
        models={"small": UsageLLM(answer="one two three", name="small")},
        prices={"small": (1.0, 2.0)},
    )
    chunks = list(llm.stream_complete("count"))
    assert [c.delta for c in chunks] == ["one", " two", " three"]
    assert all(c.additional_kwargs["pickllm"]["model"] == "small" for c in chunks)
    assert all("cost_usd" not in c.additional_kwargs["pickllm"] for c in chunks[:-1])
    last = chunks[-1].additional_kwargs["pickllm"]
    assert last["cost_usd"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert usage_of(chunks[-1])["completion_tokens"] == 5


def test_stream_closed_early_still_records_the_call() -> None:
    llm = PickLLM(models={"small": UsageLLM(answer="a b c d", name="small")}, cost=0.0)
    stream = llm.stream_complete("go")
    next(stream)
    stream.close()
    assert llm.stats()["small"].calls == 1


# ---------------------------------------------------------------------- failures
def test_transient_errors_retry_then_fall_back_through_the_core_executor() -> None:
    waits: list[float] = []
    llm = PickLLM(
        models=two_usage_llms(fail_times=10),
        prices=PRICES,
        policy=Fixed(model="small"),
        retry=RetryConfig(max_attempts=2, jitter_s=0.0),
        sleep=waits.append,
    )
    response = llm.complete("hi")
    assert response.text == "large answer"
    assert response.additional_kwargs["pickllm"]["model"] == "large"
    assert waits == [0.5]
    stats = llm.stats()
    assert (stats["small"].calls, stats["small"].errors) == (2, 2)
    assert (stats["large"].calls, stats["large"].errors) == (1, 0)


def test_all_candidates_failing_raises_execution_error() -> None:
    llms = {
        "a": UsageLLM(name="a", fail_times=99, error=ValueError),
        "b": UsageLLM(name="b", fail_times=99, error=ValueError),
    }
    llm = PickLLM(models=llms, cost=0.0)
    with pytest.raises(ExecutionError, match="every candidate") as info:
        llm.complete("x")
    assert [f.error for f in info.value.attempts] == ["ValueError", "ValueError"]


def test_async_fallback() -> None:
    llm = PickLLM(
        models=two_usage_llms(fail_times=1, error=RuntimeError),
        prices=PRICES,
        policy=Fixed(model="small"),
    )
    response = asyncio.run(llm.acomplete("hi"))
    assert response.additional_kwargs["pickllm"]["model"] == "large"
    assert llm.stats()["small"].errors == 1


# ---------------------------------------------------------------------- feedback and evaluators
def test_delayed_feedback_by_decision_id_and_by_response() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, policy="ucb1", await_feedback=True)
    first = llm.complete("q1")
    assert llm.core_router.pending() == 1  # waits for the score
    reward = llm.feedback(first.additional_kwargs["pickllm"]["decision_id"], 1.0)
    assert reward is not None
    assert 0.0 < reward <= 1.0
    second = llm.complete("q2")
    low = llm.feedback(second, 0.0)
    assert low is not None
    assert low < reward
    with pytest.raises(UnknownDecisionError):
        llm.feedback(second, 1.0)  # already scored


def test_without_await_feedback_calls_learn_at_once() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, await_feedback=False)
    response = llm.complete("q")
    assert llm.core_router.pending() == 0
    assert llm.stats()[response.additional_kwargs["pickllm"]["model"]].mean_reward > 0
    with pytest.raises(UnknownDecisionError):
        llm.feedback(response, 1.0)


def test_plain_callable_evaluator_scores_inline() -> None:
    seen: list[tuple[str, str, str]] = []

    def judge(prompt: str, answer: str, *, model: str) -> float:
        seen.append((prompt, answer, model))
        return 1.0 if "large" in answer else 0.0

    llm = PickLLM(
        models=two_usage_llms(),
        prices=PRICES,
        quality=1.0,
        cost=0.0,
        latency=0.0,
        policy=Fixed(model="large"),
        evaluator=judge,
        evaluate_in_background=False,
    )
    llm.complete("question")
    assert seen == [("question", "large answer", "large")]
    assert llm.stats()["large"].mean_reward == 1.0


def test_background_evaluation_joins_the_score() -> None:
    llm = PickLLM(
        models=two_usage_llms(),
        prices=PRICES,
        quality=1.0,
        cost=0.0,
        latency=0.0,
        policy=Fixed(model="small"),
        evaluator=lambda prompt, answer: 0.25,
    )
    for _ in range(5):
        llm.complete("question")
    runner = llm.evaluation
    assert runner is not None
    assert runner.join(timeout=10)
    assert runner.scored == 5
    assert llm.stats()["small"].mean_reward == pytest.approx(0.25)
    runner.close()


def test_streamed_answers_are_evaluated_on_their_full_text() -> None:
    seen: list[str] = []

    def judge(prompt: str, answer: str) -> float:
        seen.append(answer)
        return 1.0

    llm = PickLLM(
        models={"s": UsageLLM(answer="a b c", name="s")},
        cost=0.0,
        evaluator=judge,
        evaluate_in_background=False,
    )
    list(llm.stream_complete("q"))
    assert seen == ["a b c"]


# ---------------------------------------------------------------------- ensembles
class EnsembleOfAll(Policy):
    """Test policy: run every offered candidate; the longest answer wins."""

    name = ""  # unnamed: not registered with make_policy

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0, members=range(len(context.candidates)), kind="ensemble")

    def _update(self, decision: Decision, reward: float) -> None:
        pass

    def aggregate(self, answers: Sequence[str]) -> int:
        return max(range(len(answers)), key=lambda i: len(answers[i]))


def test_ensemble_answer_is_aggregated_usage_summed() -> None:
    llms = {
        "small": UsageLLM(answer="short", name="small"),
        "large": UsageLLM(answer="a much longer answer", name="large", output_tokens=50),
    }
    llm = PickLLM(models=llms, prices=PRICES, policy=EnsembleOfAll())
    response = llm.complete("q")
    info = response.additional_kwargs["pickllm"]
    assert response.text == "a much longer answer"
    assert info["model"] == "large"
    assert info["plan"] == "ensemble"
    assert sorted(info["members"]) == ["large", "small"]
    assert usage_of(response)["prompt_tokens"] == 20
    assert usage_of(response)["completion_tokens"] == 55
    assert info["cost_usd"] == pytest.approx((10 * 0.1 + 5 * 0.2 + 10 * 5.0 + 50 * 15.0) / 1e6)
    # a stream of an ensemble is its aggregated answer, in one chunk
    chunks = list(llm.stream_complete("q"))
    assert [c.delta for c in chunks] == ["a much longer answer"]


# ---------------------------------------------------------------------- tools
def test_tool_calls_go_only_to_tool_calling_candidates() -> None:
    llm = PickLLM(models={"mock": MockLLM(), "fc": adder("fc")}, cost=0.0, policy="random", seed=0)
    tool = FunctionTool.from_defaults(fn=lambda a, b: a + b, name="add")
    for _ in range(10):
        response = llm.chat_with_tools([tool], user_msg="what is 2 + 3?")
        assert response.additional_kwargs["pickllm"]["model"] == "fc"
        calls = llm.get_tool_calls_from_response(response)
        assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("add", {"a": 2, "b": 3})]
    assert llm.stats()["mock"].calls == 0


def test_prepare_chat_with_tools_then_chat_runs_the_chosen_llm() -> None:
    llm = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0, policy=Fixed(model="b"))
    tool = FunctionTool.from_defaults(fn=lambda a, b: a + b, name="add")
    kwargs = llm._prepare_chat_with_tools([tool], user_msg="2 + 3?")
    response = llm.chat(**kwargs)
    assert response.additional_kwargs["pickllm"]["model"] == "b"
    assert llm.get_tool_calls_from_response(response)[0].tool_name == "add"


def test_predict_and_call_through_pickllm() -> None:
    llm = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0, policy="random", seed=2)
    tool = FunctionTool.from_defaults(fn=lambda a, b: a + b, name="add")
    assert llm.predict_and_call([tool], user_msg="2 + 3?").response == "5"


# ---------------------------------------------------------------------- instrumentation
MESSAGES = [ChatMessage(role=MessageRole.USER, content="hello")]


def _drain_async(agen_factory: Any) -> None:
    async def run() -> None:
        async for _ in await agen_factory():
            pass

    asyncio.run(run())


CALLS: dict[str, Callable[[Any], object]] = {
    "complete": lambda llm: llm.complete("a"),
    "chat": lambda llm: llm.chat(MESSAGES),
    "stream_complete": lambda llm: list(llm.stream_complete("b")),
    "stream_chat": lambda llm: list(llm.stream_chat(MESSAGES)),
    "acomplete": lambda llm: asyncio.run(llm.acomplete("c")),
    "achat": lambda llm: asyncio.run(llm.achat(MESSAGES)),
    "astream_complete": lambda llm: _drain_async(lambda: llm.astream_complete("d")),
    "astream_chat": lambda llm: _drain_async(lambda: llm.astream_chat(MESSAGES)),
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_one_llm_event_per_call(events: EventCounter, method: str) -> None:
    # The chosen LLM's own events are the only ones: as many as calling it directly
    # (one for most methods; MockFunctionCallingLLM.achat calls its chat, so two there).
    CALLS[method](adder("direct"))
    direct = events.llm_starts()
    assert direct == (2 if method == "achat" else 1)
    llm = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0, policy="random", seed=0)
    CALLS[method](llm)
    assert events.llm_starts() == 2 * direct
    assert events.counts["PickLLMRouteEvent"] == 1


def test_pickllm_adds_no_event_to_a_child_with_nested_events(events: EventCounter) -> None:
    # CustomLLM.chat calls its own complete: two events of the child's own making.
    UsageLLM(name="direct").chat(MESSAGES)
    direct = events.llm_starts()
    PickLLM(models={"s": UsageLLM(name="s")}, cost=0.0).chat(MESSAGES)
    assert events.llm_starts() == 2 * direct


def test_child_span_nests_under_pickllm_span() -> None:
    spans = SimpleSpanHandler()
    root = get_dispatcher()
    root.add_span_handler(spans)
    try:
        PickLLM(models={"s": UsageLLM(name="s")}, cost=0.0).complete("hi")
    finally:
        root.span_handlers.remove(spans)
    by_id = {s.id_: s for s in spans.completed_spans}
    child = next(s for s in spans.completed_spans if s.id_.startswith("UsageLLM.complete"))
    assert child.parent_id is not None
    assert by_id[child.parent_id].id_.startswith("PickLLM.complete")


def test_token_counting_handler_counts_each_call_once() -> None:
    counter = TokenCountingHandler()
    llm = PickLLM(
        models=two_usage_llms(), prices=PRICES, callback_manager=CallbackManager([counter])
    )
    llm.complete("one")
    list(llm.stream_complete("two"))
    llm.complete("three")
    assert len(counter.llm_token_counts) == 3
    # the reported usage (10 prompt tokens per call), not a second estimate
    assert counter.prompt_llm_token_count == 30


# ---------------------------------------------------------------------- state
def test_save_and_load_continue_the_learned_state(tmp_path: Path) -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, policy="epsilon_greedy_q", seed=7)
    for i in range(20):
        llm.complete(f"q{i}")
    path = tmp_path / "router.json"
    llm.save(path)
    loaded = PickLLM.load(path, two_usage_llms())
    assert loaded.core_router.policy.state_dict() == llm.core_router.policy.state_dict()
    assert loaded.stats() == llm.stats()
    assert loaded.complete("next").text in {"small answer", "large answer"}
    with pytest.raises(ConfigError, match="are not the models"):
        PickLLM.load(path, {"other": UsageLLM()})
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(StateError):
        PickLLM.load(path, two_usage_llms())


# ---------------------------------------------------------------------- concurrency
def test_threads_lose_no_update() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, policy="thompson", seed=0)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(50):
                llm.complete(f"q{i}")
                list(llm.stream_complete(f"s{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(s.calls for s in llm.stats().values()) == 8 * 50 * 2


async def test_concurrent_tasks() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, policy="ucb1")
    responses = await asyncio.gather(*(llm.acomplete(f"q{i}") for i in range(40)))
    ids = {r.additional_kwargs["pickllm"]["decision_id"] for r in responses}
    assert len(ids) == 40
    assert sum(s.calls for s in llm.stats().values()) == 40


async def no_wait(_: float) -> None:
    return None


class CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1

    async def async_acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1


def test_rate_limiter_is_acquired_once_per_routed_call() -> None:
    limiter = CountingLimiter()
    llm = PickLLM(
        models=two_usage_llms(fail_times=1),
        prices=PRICES,
        rate_limiter=limiter,
        sleep=lambda _: None,
        async_sleep=no_wait,
    )
    llm.complete("a")  # a retried call is still one routed call
    list(llm.stream_complete("b"))
    asyncio.run(llm.acomplete("c"))
    assert limiter.acquired == 3


class BadRequestError(Exception):
    """Named like the providers' 400 error, which the executor treats as fatal."""


def test_fatal_errors_are_raised_without_fallback_and_recorded() -> None:
    llms = two_usage_llms(fail_times=1, error=BadRequestError)
    llm = PickLLM(models=llms, prices=PRICES, policy=Fixed(model="small"))
    with pytest.raises(BadRequestError):
        llm.complete("bad")
    assert llm.stats()["small"].errors == 1
    assert llms["large"].calls == 0
