"""The state store interface and the in-process store.

A :class:`StateStore` holds what several routers learn together: additive sums (the
policies' evidence and the routers' statistics), a compare-and-set document (the state of
the policies whose update does not commute, replayed in order), the spend of the current
budget period and the last circuit-breaker event of each model. One namespace per store
object (its ``name``); the routers bound to it learn as one.

* :class:`MemoryStore` keeps it in this process: routers sharing one ``MemoryStore`` learn
  as one, with the same merge code as Redis (the unit tests of the merge use it).
* :class:`pickllm.state.RedisStore` keeps it in Redis, for several processes.

A router built without a store (``store=None``, the default) keeps its state to itself and
never syncs: today's single-process behaviour, at no cost.

Every batch a router sends carries its writer id and a sequence number, and a store
applies a batch at most once: a batch whose reply was lost (a timeout) is sent again
unchanged, and nothing is counted twice.
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pickllm.errors import ConfigError, ConfigTypeError, PickLLMError, StateError

__all__ = [
    "SCHEMA_VERSION",
    "Batch",
    "BreakerEvent",
    "MemoryStore",
    "NamespaceMissingError",
    "Shared",
    "StateStore",
]

SCHEMA_VERSION = 1
"""The layout of the shared state; a store holding another version is refused."""

PolicyUpdate = Callable[[Mapping[str, Any] | None], dict[str, Any]]
"""Turns the shared policy document (None: none yet) into the next one."""


class NamespaceMissingError(PickLLMError):
    """The store lost the namespace (a Redis restarted without persistence, a clear).

    Raised by ``exchange`` before it applies anything; the router then opens the namespace
    again, and if it is the one that re-creates it, sends everything it knows.
    """


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """The last change of a model's circuit seen by any router (the latest ``at`` wins).

    Attributes:
        state: ``"open"`` (the model is skipped) or ``"closed"``.
        at: when it happened, in seconds of the store's wall clock.
        failures: consecutive failures when it happened.
    """

    state: Literal["open", "closed"]
    at: float
    failures: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """One router's updates since its last confirmed exchange.

    Attributes:
        writer: the sending router's id (random per router object).
        seq: the batch's number for this writer; a store skips a batch whose ``seq`` is not
            above the last one it applied for the writer (a resent batch).
        sums: increments of the additive fields.
        spend_period: the budget period the spend belongs to (``"all"``: no period).
        spend: increments of the period's spend (``"total"`` and ``"k|<key>"``).
        spend_ttl_s: how long the period's spend is kept (None: for ever).
        breakers: circuit changes since the last exchange, by model.
    """

    writer: str
    seq: int
    sums: Mapping[str, float] = field(default_factory=dict)
    spend_period: str = "all"
    spend: Mapping[str, float] = field(default_factory=dict)
    spend_ttl_s: float | None = None
    breakers: Mapping[str, BreakerEvent] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """What a store holds after an exchange: every router's updates together.

    Attributes:
        sums: the additive fields' totals.
        spend: the spend of the batch's period.
        breakers: the last circuit event of each model.
    """

    sums: dict[str, float]
    spend: dict[str, float]
    breakers: dict[str, BreakerEvent]


class StateStore(ABC):
    """Where the learned state of routers that learn as one lives.

    The public settings say how routers use the store; subclasses implement the five
    storage hooks (``open``, ``exchange``, ``read_policy``, ``update_policy``, ``clear``).

    Args:
        name: the namespace (the routers that learn together share it).
        sync_interval_s: a router syncs when this many seconds of its clock have passed
            since its last sync (at its next ``record``).
        sync_every: a router also syncs after this many records (None: by time only).
        max_queue: the most non-commuting updates (learning automaton, constant-step
            Q-learning) a router keeps while the store is unreachable; older ones are
            dropped and counted. Additive updates are never dropped: they are sums.
        warn_interval_s: while the store stays unreachable, a ``StoreWarning`` at most
            this often (seconds of the router's clock).
        wall_clock: seconds since the epoch, shared by every process (circuit events,
            budget periods).
        background: run the syncs in a worker thread, so the ``record`` that makes one
            due does not wait for the store at all (for async apps: no blocking call in
            the event loop); False runs them in that ``record``, after the router's lock.
    """

    def __init__(
        self,
        *,
        name: str,
        sync_interval_s: float = 1.0,
        sync_every: int | None = None,
        max_queue: int = 10_000,
        warn_interval_s: float = 60.0,
        wall_clock: Callable[[], float] = time.time,
        background: bool = False,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(name, str) or not name or any(c in name for c in "{}: \n"):
            msg = (
                f"{owner} name must be a non-empty string without braces, colons or "
                f"whitespace, got {name!r}"
            )
            raise ConfigError(msg)
        self.name = name
        _check_positive(owner, "sync_interval_s", sync_interval_s)
        self.sync_interval_s = sync_interval_s
        if sync_every is not None:
            _check_count(owner, "sync_every", sync_every)
        self.sync_every = sync_every
        _check_count(owner, "max_queue", max_queue)
        self.max_queue = max_queue
        _check_positive(owner, "warn_interval_s", warn_interval_s)
        self.warn_interval_s = warn_interval_s
        if not callable(wall_clock):
            msg = f"{owner} wall_clock must be a callable returning seconds, got {wall_clock!r}"
            raise ConfigTypeError(msg)
        self.wall_clock = wall_clock
        if not isinstance(background, bool):
            msg = f"{owner} background must be a bool, got {background!r}"
            raise ConfigTypeError(msg)
        self.background = background

    @abstractmethod
    def open(self, schema: Mapping[str, Any]) -> str:
        """Record ``schema`` in an empty namespace, or check it against the stored one.

        Returns:
            The stored schema's ``epoch``: ``schema["epoch"]`` when this call created the
            namespace.

        Raises:
            StateError: the namespace holds another schema version, or another policy.
            StoreUnavailableError: the store did not answer.
        """

    @abstractmethod
    def exchange(self, batch: Batch) -> Shared:
        """Apply ``batch`` atomically (at most once per writer and seq); return the totals.

        Raises:
            NamespaceMissingError: the namespace has no schema (it was lost); nothing was
                applied.
            StoreUnavailableError: the store did not answer (the batch may or may not have
                been applied: send it again unchanged).
        """

    @abstractmethod
    def read_policy(self) -> dict[str, Any] | None:
        """The shared policy document, or None if there is none yet."""

    @abstractmethod
    def update_policy(self, update: PolicyUpdate) -> dict[str, Any]:
        """Replace the policy document by ``update(document)``, atomically (compare and set).

        ``update`` may be called more than once (when another writer got there first).
        """

    @abstractmethod
    def clear(self) -> None:
        """Delete everything of this namespace (the schema too)."""

    def close(self) -> None:
        """Release the store's connections (a store that has none does nothing)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_schema(where: str, stored: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Refuse a stored schema that is not ``schema`` (another version or policy)."""
    version = stored.get("version")
    if version != SCHEMA_VERSION:
        msg = (
            f"{where} holds shared state of schema version {version!r}; this PickLLM reads "
            f"version {SCHEMA_VERSION}: give the store another name, or delete that "
            "namespace (store.clear()) to start afresh"
        )
        raise StateError(msg)
    if stored.get("policy") != schema.get("policy"):
        msg = (
            f"{where} holds the state of policy {stored.get('policy')!r}, not "
            f"{schema.get('policy')!r}: routers sharing a store must use the same policy and "
            "hyperparameters (seeds aside); give the store another name"
        )
        raise StateError(msg)


def encode_document(document: Mapping[str, Any]) -> str:
    """A policy document as JSON text (finite numbers only, no pickle)."""
    return json.dumps(document, sort_keys=True, allow_nan=False)


class MemoryStore(StateStore):
    """The in-process store: routers of one process that share it learn as one.

    It runs the same merge as :class:`pickllm.state.RedisStore` without a server (threads,
    tests). A router without a store keeps its state to itself instead.

    Args:
        name: the namespace (reported in messages).
        **settings: the sync settings of :class:`StateStore`.

    Examples:
        >>> from pickllm import Candidate, Feedback, Router
        >>> store = MemoryStore(name="demo", sync_every=1)
        >>> pool = [Candidate(name="a"), Candidate(name="b")]
        >>> first = Router(pool, seed=0, store=store)
        >>> second = Router(pool, seed=1, store=store)
        >>> for router in (first, second):
        ...     _ = router.record(router.route("q"), Feedback(quality=1.0))
        >>> _ = first.sync()
        >>> sum(s.calls for s in first.stats().values())
        2
    """

    def __init__(self, *, name: str = "default", **settings: Any) -> None:
        super().__init__(name=name, **settings)
        self._lock = threading.Lock()
        self._schema: dict[str, Any] | None = None
        self._sums: dict[str, float] = {}
        self._seen: dict[str, int] = {}
        self._spend: dict[str, dict[str, float]] = {}
        self._breakers: dict[str, BreakerEvent] = {}
        self._policy: str | None = None

    def open(self, schema: Mapping[str, Any]) -> str:
        """Record or check the namespace's schema (see :meth:`StateStore.open`)."""
        with self._lock:
            if self._schema is None:
                self._schema = dict(schema)
            else:
                check_schema(f"MemoryStore {self.name!r}", self._schema, schema)
            return str(self._schema.get("epoch", ""))

    def exchange(self, batch: Batch) -> Shared:
        """Apply a batch at most once; return the totals (see :meth:`StateStore.exchange`)."""
        with self._lock:
            if self._schema is None:
                msg = f"MemoryStore {self.name!r} has no schema: it was cleared"
                raise NamespaceMissingError(msg)
            if batch.seq > self._seen.get(batch.writer, 0):
                self._seen[batch.writer] = batch.seq
                sums = self._sums
                for key, value in batch.sums.items():
                    sums[key] = sums.get(key, 0.0) + value
                spend = self._spend.setdefault(batch.spend_period, {})
                for key, value in batch.spend.items():
                    spend[key] = spend.get(key, 0.0) + value
                for key in [k for k in self._spend if k != batch.spend_period][:-2]:
                    del self._spend[key]  # periods long over
                for name, event in batch.breakers.items():
                    old = self._breakers.get(name)
                    if old is None or old.at < event.at:
                        self._breakers[name] = event
            return Shared(
                sums=dict(self._sums),
                spend=dict(self._spend.get(batch.spend_period, {})),
                breakers=dict(self._breakers),
            )

    def read_policy(self) -> dict[str, Any] | None:
        """The shared policy document, or None."""
        with self._lock:
            return None if self._policy is None else json.loads(self._policy)

    def update_policy(self, update: PolicyUpdate) -> dict[str, Any]:
        """Replace the policy document by ``update(document)``, atomically."""
        with self._lock:
            current = None if self._policy is None else json.loads(self._policy)
            document = update(current)
            self._policy = encode_document(document)
            return document

    def clear(self) -> None:
        """Delete everything of this namespace."""
        with self._lock:
            self._schema = None
            self._sums.clear()
            self._seen.clear()
            self._spend.clear()
            self._breakers.clear()
            self._policy = None


def _check_positive(owner: str, name: str, value: object) -> None:
    msg = f"{owner} {name} must be a positive finite number of seconds, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(msg)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(msg)


def _check_count(owner: str, name: str, value: object) -> None:
    msg = f"{owner} {name} must be an int >= 1, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(msg)
    if value < 1:
        raise ConfigError(msg)
