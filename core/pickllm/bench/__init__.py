"""Benchmark harness: replay recorded LLM outcomes through routers and baselines.

:func:`run_bench` (:mod:`pickllm.bench.run`) evaluates baselines, offline routers and
online policies on the test rows of an :class:`~pickllm.data.OutcomeTable`;
:func:`render_report` (:mod:`pickllm.bench.report`) lays the :class:`BenchReport` out as
tables and :func:`plot_report` (:mod:`pickllm.bench.plot`) draws it. The methods the
bench finds by name live in :mod:`pickllm.registry`.
"""

from pickllm.bench.plot import plot_report
from pickllm.bench.report import BenchReport, MethodResult, OnlineStats, render_report
from pickllm.bench.run import (
    DEFAULT_OFFLINE_ROUTERS,
    DEFAULT_ONLINE_POLICIES,
    SETTLE_SHARE,
    SETTLE_WINDOW,
    ProgressCallback,
    check_policy_params,
    resolve_methods,
    run_bench,
    split_rows,
)
from pickllm.learn.offline import PerTaskAverage
from pickllm.registry import (
    OFFLINE_ROUTERS,
    ONLINE_FACTORIES,
    OfflineRouter,
    PolicyFactory,
    PolicySetup,
    available_methods,
    register_offline_router,
    register_online_policy,
)

__all__ = [
    "DEFAULT_OFFLINE_ROUTERS",
    "DEFAULT_ONLINE_POLICIES",
    "OFFLINE_ROUTERS",
    "ONLINE_FACTORIES",
    "SETTLE_SHARE",
    "SETTLE_WINDOW",
    "BenchReport",
    "MethodResult",
    "OfflineRouter",
    "OnlineStats",
    "PerTaskAverage",
    "PolicyFactory",
    "PolicySetup",
    "ProgressCallback",
    "available_methods",
    "check_policy_params",
    "plot_report",
    "register_offline_router",
    "register_online_policy",
    "render_report",
    "resolve_methods",
    "run_bench",
    "split_rows",
]
