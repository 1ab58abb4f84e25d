"""ChatPickLLM overhead: ``ChatPickLLM.invoke`` against a direct ``invoke`` of the same fake model.

Run: ``python benchmarks/langchain_overhead.py [--breakdown]``. Both sides call the same
offline ``FakeToolChatModel`` (no network, no sleep) through one LangChain run each: the
routed side runs ChatPickLLM's, which translates the call into an engine request, lets
``pickllm.engine.Engine`` route it, run it (timing, usage, cost), record the feedback and
learn from it, and forwards inline to the fake's ``_generate``. The two sides are measured
interleaved, in batches, in one run; the figure is the ratio of the median per-call
times. Target: <= 1.35x. ``--breakdown`` shows what each layer adds.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult

from langchain_pickllm import ChatPickLLM, FakeToolChatModel

TARGET_RATIO = 1.35


def measure(
    fn: Callable[[], object], other: Callable[[], object], *, batches: int, batch: int
) -> tuple[list[float], list[float]]:
    """Per-call microseconds of ``fn`` and ``other``, batch by batch, interleaved."""
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(batches):
        # Alternate which side goes first so drift (turbo, caches) hits both alike.
        order = ((fn, ours), (other, theirs)) if i % 2 == 0 else ((other, theirs), (fn, ours))
        for call, out in order:
            start = time.perf_counter()
            for _ in range(batch):
                call()
            out.append((time.perf_counter() - start) / batch * 1e6)
    return ours, theirs


def run(*, policy: str, batches: int, batch: int) -> dict[str, float]:
    """Measure one policy; returns the medians and the ratio."""
    fake, other = _fakes()
    router = ChatPickLLM(**settings(policy, fake, other))
    messages = [HumanMessage(content="What is the capital of France?")]

    def direct() -> object:
        return fake.invoke(messages)

    def routed() -> object:
        return router.invoke(messages)

    for _ in range(200):  # warm-up: imports, caches, first-call paths
        direct()
        routed()
    gc.collect()
    routed_us, direct_us = measure(routed, direct, batches=batches, batch=batch)
    ratios = [r / d for r, d in zip(routed_us, direct_us, strict=True)]
    r, d = statistics.median(routed_us), statistics.median(direct_us)
    return {
        "direct_us": d,
        "routed_us": r,
        "overhead_us": r - d,
        "ratio": statistics.median(ratios),
        "direct_min_us": min(direct_us),
        "routed_min_us": min(routed_us),
    }


class _Passthrough(ChatPickLLM):
    """Inline forwarding to the first model, without routing."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # noqa: ARG002 - LangChain's hook signature
    ) -> ChatResult:
        child = next(iter(self.models.values()))
        return child._generate(messages, stop=stop, run_manager=run_manager)  # noqa: SLF001


class _RouteOnly(ChatPickLLM):
    """The translated request, Engine.route, then inline forwarding."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine, request, calls = self._prepare(messages, stop, run_manager, kwargs)
        return calls.call(engine.route(request).candidate)


class _EngineRun(ChatPickLLM):
    """Engine.run (route, run, record, learn), without tagging the answer."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine, request, calls = self._prepare(messages, stop, run_manager, kwargs)
        return engine.run(request, calls).value


def breakdown(*, policy: str, batches: int, batch: int) -> dict[str, float]:
    """Median per-call microseconds of each layer, measured round-robin."""
    fake, other = _fakes()
    chat = settings(policy, fake, other)
    layers: dict[str, Any] = {
        "direct invoke of the fake": fake,
        "inline forwarding, no routing": _Passthrough(**chat),
        "+ request, Engine.route": _RouteOnly(**chat),
        "+ Engine.run (record, learn)": _EngineRun(**chat),
        "ChatPickLLM (+ tag, alias)": ChatPickLLM(**chat),
    }
    messages = [HumanMessage(content="What is the capital of France?")]
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(200):
        for model in layers.values():
            model.invoke(messages)
    for _ in range(batches):
        for name, model in layers.items():
            start = time.perf_counter()
            for _ in range(batch):
                model.invoke(messages)
            times[name].append((time.perf_counter() - start) / batch * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def settings(policy: str, small: FakeToolChatModel, large: FakeToolChatModel) -> dict[str, Any]:
    """The measured ChatPickLLM's settings: two fakes, their prices, ``policy``."""
    return {
        "models": {"small": small, "large": large},
        "prices": {"small": (0.15, 0.6), "large": (2.5, 10.0)},
        "policy": policy,
        "seed": 0,
        # Learn at once, as with an evaluator: no call waits in the router's pending table.
        "await_feedback": False,
    }


def _fakes() -> tuple[FakeToolChatModel, FakeToolChatModel]:
    return (
        FakeToolChatModel(model="fake-small", answer="The capital of France is Paris."),
        FakeToolChatModel(model="fake-large", answer="Paris is the capital of France."),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument(
        "--policies", default="thompson,epsilon_greedy_q,learning_automaton,ucb1,cheapest"
    )
    parser.add_argument("--breakdown", action="store_true", help="show where the time goes")
    args = parser.parse_args(argv)
    print(
        f"{'policy':<20} {'direct us':>10} {'routed us':>10} {'+us':>7} {'ratio':>7}  "
        f"{'min direct':>10} {'min routed':>10} {'min ratio':>9}"
    )
    worst = 0.0
    for policy in args.policies.split(","):
        res = run(policy=policy, batches=args.batches, batch=args.batch)
        worst = max(worst, res["ratio"])
        print(
            f"{policy:<20} {res['direct_us']:>10.1f} {res['routed_us']:>10.1f} "
            f"{res['overhead_us']:>7.1f} {res['ratio']:>6.3f}x  {res['direct_min_us']:>10.1f} "
            f"{res['routed_min_us']:>10.1f} {res['routed_min_us'] / res['direct_min_us']:>8.3f}x"
        )
    verdict = "meets" if worst <= TARGET_RATIO else "misses"
    print(f"worst median ratio: {worst:.3f}x ({verdict} the target of {TARGET_RATIO}x)")
    if args.breakdown:
        policy = args.policies.split(",")[0]
        layers = breakdown(policy=policy, batches=args.batches // 2, batch=args.batch)
        base = next(iter(layers.values()))
        print(f"\nwhere the time goes ({policy}; median us per invoke, and over the direct call)")
        for name, us in layers.items():
            print(f"  {name:<38} {us:>7.1f}  {us - base:>+7.1f}")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
