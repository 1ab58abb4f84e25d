"""Everything PickLLM finds by name: policies, and the methods ``pickllm bench`` runs.

* **Policies**: :func:`make_policy` and :func:`available_policies` look policies up by
  their class attribute ``name``. The class hierarchy is the registry: every concrete
  subclass of :class:`~pickllm.policies.Policy` that sets its own ``name`` is found, the
  built-in ones, the learned one and yours, with no list to edit and no table to fill.
* **Bench methods**: :data:`OFFLINE_ROUTERS` (factories of fresh offline routers, the
  per-task baseline and the learned configurations of :mod:`pickllm.learn.offline`) and
  :data:`ONLINE_FACTORIES` (online policies that need more than a seed), extended with
  :func:`register_offline_router` and :func:`register_online_policy`.

These two dictionaries are the only module-level mutable registries of the package.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

import pickllm.policies  # noqa: F401 - defines the built-in policy classes
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError
from pickllm.learn.offline import PerTaskAverage, offline_routers
from pickllm.learn.policy import LearnedPolicy
from pickllm.policies.base import Policy

__all__ = [
    "OFFLINE_ROUTERS",
    "ONLINE_FACTORIES",
    "OfflineRouter",
    "PolicyFactory",
    "PolicySetup",
    "available_methods",
    "available_policies",
    "make_policy",
    "policy_class",
    "register_offline_router",
    "register_online_policy",
]


# ---------------------------------------------------------------------------- policies
def _policy_classes() -> dict[str, type[Policy]]:
    """Every concrete Policy subclass that names itself, by name.

    A subclass that inherits its parent's ``name`` is not listed under it. When several
    classes claim one name, a built-in policy keeps it; among others the last one found
    wins.
    """
    found: dict[str, type[Policy]] = {}
    todo: list[type[Policy]] = Policy.__subclasses__()
    seen: set[type[Policy]] = set(todo)
    while todo:
        cls = todo.pop(0)
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name or inspect.isabstract(cls):
            continue
        current = found.get(name)
        if current is None or not _builtin(current):
            found[name] = cls
    return found


def _builtin(cls: type[Policy]) -> bool:
    return cls.__module__.startswith("pickllm.")


def available_policies() -> list[str]:
    """The names of the built-in policies.

    ``make_policy`` also finds any subclass of ``Policy`` of yours that names itself
    (``name = "..."``) once its module is imported.

    Examples:
        >>> available_policies()[:3]
        ['cheapest', 'epsilon_greedy_q', 'fixed']
    """
    return sorted(name for name, cls in _policy_classes().items() if _builtin(cls))


def policy_class(name: str) -> type[Policy]:
    """The policy class called ``name`` (case and ``-``/``_`` insensitive).

    Raises:
        ConfigError: the name is unknown (the message lists the known names).
    """
    classes = _policy_classes()
    key = name.strip().lower().replace("-", "_")
    if key not in classes:
        msg = f"unknown policy {name!r}; available: {', '.join(available_policies())}"
        raise ConfigError(msg)
    return classes[key]


def make_policy(name: str, **params: Any) -> Policy:
    """Build a policy from its short name.

    Raises:
        ConfigError: the name is unknown (the message lists the known names), or the
            policy needs an argument that ``params`` does not give (the message names it).

    Examples:
        >>> make_policy("ucb1", seed=0)
        UCB1(exploration=1.4142135623730951, seed=0)
        >>> try:
        ...     make_policy("fixed")
        ... except ConfigError as exc:
        ...     print(exc)
        policy 'fixed' needs the argument 'model', as in make_policy('fixed', model=...)
    """
    cls = policy_class(name)
    required = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    missing = [p for p in required if p not in params]
    if missing:
        needed = " and ".join(repr(p) for p in missing)
        example = ", ".join(f"{p}=..." for p in missing)
        plural = "s" if len(missing) > 1 else ""
        msg = (
            f"policy {cls.name!r} needs the argument{plural} {needed}, "
            f"as in make_policy({cls.name!r}, {example})"
        )
        raise ConfigError(msg)
    return cls(**params)


# ---------------------------------------------------------------------------- bench
@runtime_checkable
class OfflineRouter(Protocol):
    """A router that trains on recorded outcomes and predicts quality and cost.

    ``fit`` sees the table and the train row indices; ``predict`` returns, for the given
    rows, the predicted quality ``q_hat`` and cost ``c_hat``, both ``(len(rows), k)``. The
    harness turns predictions into routing decisions with :mod:`pickllm.costaware`.
    """

    name: str

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        """Learn from ``table`` restricted to ``rows``."""

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``(q_hat, c_hat)`` for ``rows``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySetup:
    """What an online policy factory may use to build its policy.

    Args:
        seed: the seed to give the policy.
        table: the benchmarked table.
        train: its train rows.
        best_single: the most accurate model on the train rows.
    """

    seed: int
    table: OutcomeTable
    train: np.ndarray
    best_single: str


PolicyFactory = Callable[[PolicySetup], Policy]


def _fixed(setup: PolicySetup) -> Policy:
    # Always the model a user would pick from the training data: the best single model.
    return make_policy("fixed", model=setup.best_single, seed=setup.seed)


def _per_context(setup: PolicySetup) -> Policy:
    # PickLLM's context-aware mode: one learning automaton (its core learner) per task.
    return make_policy("per_context", policy=make_policy("learning_automaton"), seed=setup.seed)


OFFLINE_ROUTERS: dict[str, Callable[[], OfflineRouter]] = {
    "per_task": PerTaskAverage,
    **offline_routers(),
}
"""Offline routers by name: a factory returning a fresh, unfitted router (the per-task
baseline and the SelectLLM and Zooter configurations of :mod:`pickllm.learn.offline`)."""

ONLINE_FACTORIES: dict[str, PolicyFactory] = {"fixed": _fixed, "per_context": _per_context}
"""How to build online policies that need more than a seed; other names use
``make_policy(name, seed=seed)``. ``fixed`` is fixed to the best single model on the train
rows; ``per_context`` keeps one learning automaton per task."""


def register_offline_router(name: str, factory: Callable[[], OfflineRouter]) -> None:
    """Make an offline router available to ``run_bench`` and ``pickllm bench`` by name."""
    if not name or not isinstance(name, str):
        msg = f"offline router name must be a non-empty string, got {name!r}"
        raise ConfigError(msg)
    OFFLINE_ROUTERS[name] = factory


def register_online_policy(name: str, factory: PolicyFactory) -> None:
    """Build the online policy ``name`` with ``factory(setup)`` instead of ``make_policy``."""
    if not name or not isinstance(name, str):
        msg = f"online policy name must be a non-empty string, got {name!r}"
        raise ConfigError(msg)
    ONLINE_FACTORIES[name] = factory


def available_methods() -> dict[str, list[str]]:
    """Names ``run_bench(policies=...)`` accepts: ``{"online": [...], "offline": [...]}``."""
    # A learned policy needs a trained scorer: it is benchmarked through its offline router.
    online = sorted((set(available_policies()) - {LearnedPolicy.name}) | set(ONLINE_FACTORIES))
    return {"online": online, "offline": sorted(OFFLINE_ROUTERS)}
