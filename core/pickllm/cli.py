"""The ``pickllm`` console script.

Each subcommand is one function that adds its parser to the subparsers and sets
``handler`` to a function ``(args) -> exit code``; :data:`SUBCOMMANDS` lists them. Errors
a user can fix (unknown names, malformed files, bad options) print one line on stderr and
exit with status 2, without a traceback.

Examples:
    >>> main(["bench", "--policies", "nope"])
    2
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from pickllm._version import __version__
from pickllm.errors import PickLLMError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SUBCOMMANDS", "main"]

_USAGE_ERROR = 2
_INTERRUPTED = 130


class _Progress:
    """A progress bar (rich) for the long steps of a command, or nothing.

    Used as a context manager; called as ``progress(label, done, total)`` after each unit
    of work (the bench's :data:`~pickllm.bench.ProgressCallback`), and ``phase(text)``
    names a step whose length is unknown (loading the data). Without a console (``--quiet``,
    or stderr is not a terminal) every method does nothing.
    """

    def __init__(self, console: Console | None, command: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._command = command
        self._bar = (
            None
            if console is None
            else Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
        )
        self._task = None if self._bar is None else self._bar.add_task(command, total=None)

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, text: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=f"{self._command}: {text}")

    def __call__(self, label: str, done: int, total: int) -> None:
        if self._bar is not None and self._task is not None:
            description = f"{self._command}: {label} done"
            self._bar.update(self._task, completed=done, total=total, description=description)


def _console() -> Console:
    """The console progress is drawn on: stderr (a function, so tests can replace it)."""
    from rich.console import Console

    return Console(stderr=True)


def _progress(command: str, quiet: bool) -> _Progress:
    """A progress bar on stderr; silent with ``--quiet`` or when stderr is not a terminal."""
    console = None if quiet else _console()
    return _Progress(console if console is not None and console.is_terminal else None, command)


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``low`` (argparse names the option in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            msg = f"must be an int >= {low}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def _param_value(text: str) -> Any:
    """A hyperparameter's value: JSON (``2``, ``0.5``, ``true``, ``[1, 2]``), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _policy_param(text: str) -> tuple[str, str, Any]:
    """An argparse type: ``NAME.KEY=VALUE`` as ``(name, key, value)``."""
    target, sep, value = text.partition("=")
    name, dot, key = target.strip().rpartition(".")
    if not sep or not dot or not name or not key.strip():
        msg = f"must look like NAME.KEY=VALUE (e.g. thompson.prior_alpha=2), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return name, key.strip(), _param_value(value.strip())


def _param(text: str) -> tuple[str, Any]:
    """An argparse type: ``KEY=VALUE`` as ``(key, value)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        msg = f"must look like KEY=VALUE (e.g. exploration=0.5), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return key.strip(), _param_value(value.strip())


def _check_output(option: str, path: Path | None, *, figure: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    Raises:
        ConfigError: the folder is missing or not writable, the path is a folder, or (for
            a figure) the extension is not a format matplotlib writes or matplotlib is
            missing; the message names the option.
    """
    from pickllm.errors import ConfigError

    if path is None:
        return
    folder = path.parent
    if path.is_dir():
        msg = f"argument {option}: {str(path)!r} is a folder; give a file name"
        raise ConfigError(msg)
    if not folder.is_dir():
        msg = f"argument {option}: folder {str(folder)!r} of {str(path)!r} does not exist"
        raise ConfigError(msg)
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        msg = f"argument {option}: {str(path)!r} is not writable"
        raise ConfigError(msg)
    if figure:
        try:
            from matplotlib.backend_bases import FigureCanvasBase

            importlib.import_module("matplotlib.backends.backend_agg")  # what plots draw on
        except ImportError as exc:
            msg = f"argument {option}: plotting needs matplotlib: pip install 'pickllm[plot]'"
            raise ConfigError(msg) from exc
        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in formats:
            msg = (
                f"argument {option}: cannot write a figure as {str(path)!r}; end the name with "
                f"one of {', '.join('.' + f for f in formats)}"
            )
            raise ConfigError(msg)


def _add_bench(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="replay recorded LLM outcomes through routers and baselines",
        description=(
            "Replay recorded per-query outcomes of real LLMs through the routing policies and "
            "report accuracy, cost, quality-cost AUC, APGR/CPT and online regret against the "
            "baselines (single models, random, best single, best per task, convex hull, oracle)."
        ),
    )
    parser.add_argument(
        "--data",
        default="routerbench_subset",
        metavar="NAME|PATH",
        help="a bundled data set (routerbench_subset, llmrouter_9llm) or a long-format "
        "CSV(.gz) file (default: %(default)s)",
    )
    parser.add_argument(
        "--policies",
        default=None,
        metavar="A,B,...",
        help="comma-separated online policies and offline routers, or 'all' "
        "(default: the offline routers and the core online policies)",
    )
    parser.add_argument(
        "--policy-param",
        type=_policy_param,
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a hyperparameter of an online policy run, e.g. thompson.prior_alpha=2 or "
        "lin_ucb.exploration=0.5 (repeatable; the value is JSON, else a string; the "
        "allowed keys are the policy's constructor arguments but seed)",
    )
    parser.add_argument(
        "--objective",
        default=None,
        metavar="SPEC",
        help="reward weights, e.g. quality=1,cost=0.5,latency=0.1 (default: 1, 0.5, 0.2)",
    )
    parser.add_argument(
        "--split-column",
        choices=("split", "fold"),
        default="split",
        help="choose test rows by split name or by fold number (default: %(default)s)",
    )
    parser.add_argument(
        "--test-split",
        default="test",
        metavar="NAME|FOLD",
        help="the split name or fold number of the test rows (default: %(default)s)",
    )
    parser.add_argument(
        "--stream",
        choices=("test", "all", "train"),
        default="test",
        help="rows to evaluate and stream to the online policies: the test rows, the whole "
        "data set, or the train rows (for tuning) (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        type=_int_at_least(1),
        default=5,
        metavar="N",
        help="streams per online policy (default: 5)",
    )
    parser.add_argument(
        "--seed", type=_int_at_least(0), default=0, metavar="S", help="base seed (default: 0)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write every figure as JSON (its folder must exist)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help="draw the quality-cost and regret curves; the extension picks the format "
        "(.png, .svg, .pdf, ...; needs pickllm[plot]; its folder must exist)",
    )
    parser.add_argument(
        "--price-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="prices (CSV or JSON, USD per 1M tokens) to estimate missing costs",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (it is drawn on stderr only when stderr is a terminal)",
    )
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="add threshold_cascade, optimal_cascade and cascade_routing rows (learned "
        "estimators; needs costs and responses)",
    )
    parser.add_argument(
        "--noise",
        action="store_true",
        help="add the cascade-routing paper's noisy-oracle table (AUC per noise level)",
    )
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from pickllm.bench import (
        available_methods,
        check_policy_params,
        plot_report,
        render_report,
        resolve_methods,
        run_bench,
    )
    from pickllm.data import load_outcomes
    from pickllm.objective import Objective

    _check_output("--json", args.json)
    _check_output("--plot", args.plot, figure=True)
    objective = Objective.parse(args.objective) if args.objective is not None else None
    policies: list[str] | None = None
    if args.policies is not None:
        names = [p.strip() for p in args.policies.split(",") if p.strip()]
        if names == ["all"]:
            known = available_methods()
            names = [*known["offline"], *known["online"]]
        policies = names
    # Fail on a typo before loading the data.
    _, online = resolve_methods(policies)
    policy_params: dict[str, dict[str, Any]] = {}
    for name, key, value in args.policy_param:
        policy_params.setdefault(name, {})[key] = value
    check_policy_params(policy_params, online, option="--policy-param")
    with _progress("pickllm bench", args.quiet) as progress:
        progress.phase(f"loading {args.data}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = load_outcomes(args.data, price_table=args.price_file)
        for warning in caught:
            print(f"pickllm bench: warning: {warning.message}", file=sys.stderr)
        progress.phase("running the methods")
        report = run_bench(
            table,
            policies=policies,
            objective=objective,
            split_column=args.split_column,
            test_split=args.test_split,
            seeds=args.seeds,
            seed=args.seed,
            stream=args.stream,
            progress=progress,
            cascade=args.cascade,
            noise=args.noise,
            policy_params=policy_params,
        )
        if args.plot is not None:
            progress.phase(f"drawing {args.plot}")
            plot_report(report, args.plot)
    sys.stdout.write(render_report(report))
    if args.json is not None:
        text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
        args.json.write_text(text + "\n", encoding="utf-8")
    for written in (args.json, args.plot):
        if written is not None and not args.quiet:
            print(f"pickllm bench: wrote {written}", file=sys.stderr)
    return 0


def _add_stats(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="show what a saved router has seen, per model",
        description=(
            "Read a router state file written by Router.save (or a wrapper's router) and "
            "print per model: calls, share of the calls, failed calls, mean reward, spend, "
            "cost per call and p50/p95 latency. With --plot, also draw the router's recent "
            "choices and rewards over time."
        ),
    )
    parser.add_argument("state", type=Path, metavar="STATE.json", help="the saved state")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help="draw choices and reward over time; the extension picks the format "
        "(.png, .svg, .pdf, ...; needs pickllm[plot]; its folder must exist)",
    )
    parser.set_defaults(handler=_stats)


def _stats(args: argparse.Namespace) -> int:
    from pickllm.stats import plot_stats, read_stats, render_stats

    _check_output("--plot", args.plot, figure=True)
    stats = read_stats(args.state)
    sys.stdout.write(render_stats(stats))
    if args.plot is not None:
        what = plot_stats(stats, args.plot)
        print(f"plot: {what}; wrote {args.plot}")
    return 0


def _add_train(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a query-aware router (SelectLLM or Zooter) on recorded outcomes",
        description=(
            "Train a SelectLLM or Zooter router on the train rows of an outcome table and save "
            "it (JSON + npz) to a directory that Router, ChatPickLLM and PickLLM accept through "
            "pickllm.learn.LearnedPolicy(scorer=DIR)."
        ),
    )
    parser.add_argument(
        "--data",
        default="routerbench_subset",
        metavar="NAME|PATH",
        help="a bundled data set or a long-format CSV(.gz) file (default: routerbench_subset)",
    )
    parser.add_argument(
        "--policy", required=True, choices=["selectllm", "zooter"], help="the router to train"
    )
    parser.add_argument(
        "--split-column",
        choices=["split", "fold"],
        default="split",
        help="hold out test rows by split name or by fold number (default: split)",
    )
    parser.add_argument(
        "--test-split",
        default="test",
        metavar="NAME|FOLD",
        help="the split name or fold number left out of training (default: test)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter of the router, e.g. tag_beta=0.3 (repeatable; JSON values)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--price-file", type=Path, default=None, metavar="PATH")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to save")
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="also fit the cascade estimators (post-hoc model, covariance, cost model) on "
        "the same rows and save them beside the router",
    )
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from pickllm.data import load_outcomes
    from pickllm.errors import ConfigError
    from pickllm.learn import train

    params: dict[str, Any] = {"seed": args.seed}
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            msg = f"--param must be NAME=VALUE, got {item!r}"
            raise ConfigError(msg)
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    table = load_outcomes(args.data, price_table=args.price_file)
    if args.split_column == "split":
        rows = [i for i, s in enumerate(table.splits) if s != args.test_split]
    else:
        try:
            fold = int(args.test_split)
        except ValueError as exc:
            got = args.test_split
            msg = f"--test-split must be a fold number with --split-column fold, got {got!r}"
            raise ConfigError(msg) from exc
        rows = table.rows(exclude_fold=fold).tolist()
    try:
        router = train(table, args.policy, rows=np.asarray(rows, dtype=np.intp), **params)
    except TypeError as exc:
        msg = f"bad --param for {args.policy}: {exc}"
        raise ConfigError(msg) from exc
    path = router.save(args.out)
    if args.cascade:
        from pickllm.cascade.trained import fit_learned_estimator, save_estimator

        ante = np.zeros(table.quality.shape)
        picks = np.asarray(rows, dtype=np.intp)
        ante[picks] = np.clip(router.training_predictions()[0], 0.0, 1.0)
        fitted = fit_learned_estimator(table, ante, picks, seed=args.seed)
        save_estimator(fitted, table.models, args.out)
        print(f"fitted the cascade estimators on the same rows; saved to {path}")
    print(
        f"trained {args.policy} on {len(rows)} prompts x {len(table.models)} models of "
        f"{table.name}; saved to {path}"
    )
    return 0


def _add_ope(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ope",
        help="estimate from a decision log what another policy would have earned",
        description=(
            "Off-policy evaluation: replay a decision log (a JSONL file written by "
            "Router(decision_log=...) or pickllm.ope.append_log) through a policy and "
            "estimate its mean reward on the logged traffic, with a confidence interval."
        ),
    )
    parser.add_argument("log", type=Path, metavar="LOG", help="the JSONL decision log")
    parser.add_argument(
        "--policy",
        required=True,
        metavar="NAME",
        help="the policy to evaluate, by its make_policy name (e.g. linear_thompson, lin_ucb)",
    )
    parser.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter of the policy (repeatable; the value is JSON, else a string)",
    )
    parser.add_argument(
        "--method",
        choices=("dr", "ips", "snips", "all"),
        default="dr",
        help="doubly robust, inverse propensity scoring, self-normalised IPS, or all three "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        metavar="P",
        help="the interval's coverage, in (0, 1) (default: %(default)s)",
    )
    parser.add_argument(
        "--clip",
        type=float,
        default=None,
        metavar="W",
        help="doubly robust only: cut the importance weights of its correction at W > 0 "
        "(a little bias, much less variance from rare matches; default: no clipping)",
    )
    parser.add_argument(
        "--no-learn",
        action="store_true",
        help="evaluate the policy as it stands (default: it learns from the records where it "
        "picked the logged model, the replay method, as it would live)",
    )
    parser.add_argument(
        "--seed", type=_int_at_least(0), default=0, metavar="S", help="policy seed (default: 0)"
    )
    parser.set_defaults(handler=_ope)


def _ope(args: argparse.Namespace) -> int:
    from pickllm.errors import ConfigError
    from pickllm.ope import evaluate, read_log
    from pickllm.registry import make_policy, policy_class

    if not 0.0 < args.confidence < 1.0:
        msg = f"argument --confidence: must be in (0, 1), got {args.confidence!r}"
        raise ConfigError(msg)
    if args.clip is not None and not (math.isfinite(args.clip) and args.clip > 0):
        msg = f"argument --clip: must be a finite number > 0, got {args.clip!r}"
        raise ConfigError(msg)
    if args.clip is not None and args.method != "dr":
        msg = f"argument --clip: applies to --method dr only, got --method {args.method}"
        raise ConfigError(msg)
    if not args.log.is_file():
        msg = f"argument LOG: {str(args.log)!r} is not a file"
        raise ConfigError(msg)
    params = dict(args.param)
    name = policy_class(args.policy).name
    try:
        make_policy(name, seed=args.seed, **params)
    except TypeError as exc:
        msg = f"argument --param: policy {name!r} does not take {sorted(params)}: {exc}"
        raise ConfigError(msg) from exc
    except ConfigError as exc:
        msg = f"argument --policy/--param: {exc}"
        raise ConfigError(msg) from exc
    log = read_log(args.log)
    if not log:
        msg = f"argument LOG: {str(args.log)!r} holds no decision record"
        raise ConfigError(msg)
    methods: tuple[Literal["dr", "ips", "snips"], ...] = (
        ("dr", "ips", "snips") if args.method == "all" else (args.method,)
    )
    logged = sum(r.reward for r in log) / len(log)
    print(f"{args.log}: {len(log)} decisions, logged mean reward {logged:.4f}")
    for method in methods:
        est = evaluate(
            make_policy(name, seed=args.seed, **params),
            log,
            method=method,
            confidence=args.confidence,
            learn=not args.no_learn,
            clip=args.clip,
        )
        print(
            f"{name} {method}: {est.value:.4f} [{est.low:.4f}, {est.high:.4f}] "
            f"({100 * args.confidence:g}% interval; picked the logged model "
            f"{est.matched}/{est.n})"
        )
    return 0


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_bench, _add_stats, _add_train, _add_ope]
"""Functions adding one subcommand each to the ``pickllm`` parser."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pickllm",
        description="PickLLM: route LLM calls by quality, cost and latency.",
    )
    parser.add_argument("--version", action="version", version=f"pickllm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pickllm`` command line and return its exit status.

    Args:
        argv: the arguments (without the program name); None reads ``sys.argv``.
    """
    parser = _parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else _USAGE_ERROR
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return _USAGE_ERROR
    try:
        return handler(args)
    except (PickLLMError, ImportError, OSError) as exc:
        print(f"pickllm {args.command}: error: {exc}", file=sys.stderr)
        return _USAGE_ERROR
    except KeyboardInterrupt:
        print(f"pickllm {args.command}: interrupted", file=sys.stderr)
        return _INTERRUPTED


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
