"""Instructions per call, counted by valgrind: a measure of overhead that load does not move.

Run: ``python benchmarks/instruction_counts.py`` (needs ``valgrind``; ``apt-get install
valgrind``). Wall-clock benchmarks on a shared 2-core machine drift with the load; the
number of instructions a call executes does not. Each scenario runs in its own process
under ``valgrind --tool=callgrind``, which counts only what runs inside one
``functools.reduce`` call: ``--calls`` repetitions of the measured call, after a warm-up
that is not counted. Prints instructions per call for:

* ``router``: ``Router.route`` + ``Router.record`` with 4 candidates (like
  ``benchmarks/overhead.py``), for the policies given;
* ``contextual``: ``Router.route`` + ``Router.record`` with 11 models and the four
  queries of ``benchmarks/contextual_overhead.py``, for the contextual policies given;
* ``direct`` and ``routed``: a direct ``invoke`` of the offline fake chat model, and
  ``ChatPickLLM.invoke`` over two of them (like ``benchmarks/langchain_overhead.py``,
  with ``--chat-policy``, Thompson sampling by default), and their ratio;
* with ``--layers``, ``ChatPickLLM.invoke`` built up layer by layer (the layers of
  ``benchmarks/langchain_overhead.py --breakdown``), each against the direct invoke.

A few hundred instructions of the loop itself are included in every figure.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def _router_step(policy: str) -> Callable[[object, int], None]:
    from pickllm import Candidate, Feedback, Objective, Router, make_policy

    pool = [
        Candidate(name=f"m{i}", input_price=0.1 * (i + 1), output_price=0.3 * (i + 1))
        for i in range(4)
    ]
    kwargs: dict[str, object] = {"model": "m0"} if policy == "fixed" else {}
    if policy == "per_context":
        kwargs = {"policy": make_policy("epsilon_greedy_q", seed=0)}
    router = Router(pool, make_policy(policy, seed=0, **kwargs), Objective())
    feedbacks = [
        Feedback(latency_s=0.2 + 0.01 * j, input_tokens=500, output_tokens=80, quality=j % 2)
        for j in range(16)
    ]
    key = "topic" if policy == "per_context" else None
    for j in range(300):
        router.record(router.route("warm-up query", key=key), feedbacks[j % 16])

    def step(_: object, j: int) -> None:
        router.record(router.route("What is the capital of France?", key=key), feedbacks[j & 15])

    return step


def _contextual_step(policy: str) -> Callable[[object, int], None]:
    # The set-up of benchmarks/contextual_overhead.py: 11 models, its four queries, a key.
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from benchmarks.contextual_overhead import QUERIES, _feedbacks, _pool
    from pickllm import Objective, Router, make_policy

    router = Router(_pool(11), make_policy(policy, seed=0), Objective())
    feedbacks = _feedbacks()
    for j in range(300):
        router.record(router.route(QUERIES[j % 4], key="task"), feedbacks[j % 16])

    def step(_: object, j: int) -> None:
        router.record(router.route(QUERIES[j & 3], key="task"), feedbacks[j & 15])

    return step


# The layers of benchmarks/langchain_overhead.py --breakdown, each on top of the previous one.
LAYERS = {
    "pass": "inline forwarding to the child, no routing",
    "route": "+ the translated request and Engine.route",
    "run": "+ Engine.run (run, record, learn)",
    "routed": "+ tagging the answer and aliasing its run ids (ChatPickLLM.invoke)",
}


def _chat_step(scenario: str, policy: str) -> Callable[[object, int], None]:
    """A direct invoke of the fake (``direct``), ``ChatPickLLM`` or one of its layers."""
    from langchain_core.messages import HumanMessage

    from langchain_pickllm import ChatPickLLM

    sys.path.insert(0, str(Path(__file__).parent.parent))
    from benchmarks.langchain_overhead import (
        _EngineRun,
        _fakes,
        _Passthrough,
        _RouteOnly,
        settings,
    )

    small, large = _fakes()
    chat = settings(policy, small, large)
    routed = ChatPickLLM(**chat)
    layers = {"pass": _Passthrough, "route": _RouteOnly, "run": _EngineRun}
    model = {"direct": small, "routed": routed}.get(scenario) or layers[scenario](**chat)
    messages = [HumanMessage(content="What is the capital of France?")]
    # Both sides warmed up in every process, so each is counted in the same state
    # (LangChain's per-process caches grow with what has run).
    warmed = [routed, small] if model in (routed, small) else [routed, small, model]
    for _ in range(300):
        for m in warmed:
            m.invoke(messages)

    def step(_: object, j: int) -> None:  # noqa: ARG001 - reduce's signature
        model.invoke(messages)

    return step


def _child(scenario: str, policy: str, calls: int) -> None:
    """The measured process: warm up, then ``calls`` steps inside one ``reduce``."""
    if scenario == "router":
        step = _router_step(policy)
    elif scenario == "contextual":
        step = _contextual_step(policy)
    else:
        step = _chat_step(scenario, policy)
    functools.reduce(step, range(calls), None)


def count(scenario: str, policy: str, calls: int) -> float:
    """Instructions per call of ``scenario`` (valgrind counts inside ``reduce`` only)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            scenario,
            policy,
            str(calls),
        ]
        subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - our own argv
        totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            msg = f"no instruction total in valgrind's output for {scenario} {policy}"
            raise RuntimeError(msg)
        return int(totals.group(1)) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="fixed,thompson")
    parser.add_argument(
        "--contextual",
        default="lin_ucb,linear_thompson",
        help="policies measured as benchmarks/contextual_overhead.py does ('' for none)",
    )
    parser.add_argument(
        "--chat-policy",
        default="thompson",
        help="the policy of the ChatPickLLM measured against a direct invoke",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="also count ChatPickLLM layer by layer (as langchain_overhead.py --breakdown)",
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--child", nargs=3, metavar=("SCENARIO", "POLICY", "CALLS"))
    args = parser.parse_args(argv)
    if args.child:
        scenario, policy, calls = args.child
        _child(scenario, policy, int(calls))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    for policy in args.policies.split(","):
        per_call = count("router", policy, args.calls)
        print(f"router route+record, {policy}, 4 candidates: {per_call:,.0f}")
    for policy in filter(None, args.contextual.split(",")):
        per_call = count("contextual", policy, args.calls)
        print(f"contextual route+record, {policy}, 11 models: {per_call:,.0f}")
    policy = args.chat_policy
    direct = count("direct", policy, args.calls)
    routed = count("routed", policy, args.calls)
    print(f"direct invoke of the fake chat model: {direct:,.0f}")
    print(f"ChatPickLLM.invoke ({policy}): {routed:,.0f} ({routed / direct:.3f}x)")
    if args.layers:
        print(f"ChatPickLLM.invoke ({policy}) layer by layer, against the direct invoke:")
        for layer, what in LAYERS.items():
            per_call = routed if layer == "routed" else count(layer, policy, args.calls)
            print(f"  {what:<70} {per_call:>11,.0f} ({per_call / direct:.3f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
