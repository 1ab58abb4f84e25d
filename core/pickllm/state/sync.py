"""One router's side of a shared store: its local copy, what it has not sent yet, the syncs.

The router routes and learns from its local copy; nothing on the hot path waits for the
store. A :class:`Syncer` runs after a ``record`` (outside the router's lock) when the
store's ``sync_interval_s`` has passed on the router's clock or ``sync_every`` records
were made, and on ``Router.sync()``. A sync:

1. under the router's lock, takes what the router learned since its last sync: the
   difference of its additive fields (policy evidence, statistics, spend) from the shared
   totals it last adopted, the circuit changes, and the queued non-commuting updates;
2. without the lock, sends them as one :class:`~pickllm.state.store.Batch` (numbered, so a
   batch whose reply was lost is resent and applied once) and gets the totals back;
3. under the lock again, adopts the totals plus what the router learned meanwhile.

When the store does not answer, the batch stays in flight and is resent at the next sync
(at most once per ``sync_interval_s``), a ``StoreWarning`` is issued (at most once per
``warn_interval_s``), and routing goes on from the local copy. Additive learning is never
lost (it is a difference of sums, whatever the outage's length); non-commuting updates are
queued up to ``max_queue`` and the oldest dropped (counted in ``SyncStatus``).

Shared besides the policy: the statistics' counts and sums (latency percentiles stay per
process), the budget's spend (periods are aligned to the store's wall clock so that every
process shares them), and the circuit breakers (the latest open or close of a model wins:
a model opened by one router is skipped by all of them after their next sync).

This module reads and writes the router's private state by design: it is the router's
other half, kept apart so that ``router.py`` stays about routing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from pickllm.errors import StateError, StoreUnavailableError, StoreWarning
from pickllm.state.merge import ReplayMerge, SumsMerge, merge_for
from pickllm.state.store import (
    SCHEMA_VERSION,
    Batch,
    BreakerEvent,
    NamespaceMissingError,
    Shared,
    StateStore,
)

if TYPE_CHECKING:
    from pickllm.router import Router
    from pickllm.types import Decision

__all__ = ["SyncStatus", "Syncer"]

logger = logging.getLogger(__name__)

_TALLY_FIELDS = (
    "calls",
    "errors",
    "rewarded",
    "reward_sum",
    "cost",
    "input_tokens",
    "output_tokens",
)
_INT_FIELDS = frozenset({"calls", "errors", "rewarded", "input_tokens", "output_tokens"})
_MAX_WRITERS = 1000
"""How many writers' last applied batch a replayed policy document remembers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncStatus:
    """How a router's sharing through its store is going.

    Attributes:
        store: the store's ``repr``.
        connected: the last attempt to reach the store succeeded.
        syncs: successful syncs.
        failures: failed attempts (the store did not answer in time).
        unsent_records: records made since the last successful sync (their learning is
            kept locally until it is sent).
        queued_updates: non-commuting updates waiting to be sent.
        dropped_updates: non-commuting updates dropped because the queue was full.
    """

    store: str
    connected: bool
    syncs: int
    failures: int
    unsent_records: int
    queued_updates: int
    dropped_updates: int


class Syncer:
    """Keeps one router in step with a store (see the module docstring).

    Args:
        router: the router (its policy must be one whose learning can be shared).
        store: the store.
        new_breaker: makes the router's circuit-breaker record of a model.
        max_spend_keys: how many context keys the router tracks the spend of.

    Raises:
        ConfigError: the router's policy cannot share its learning.
    """

    def __init__(
        self,
        router: Router,
        store: StateStore,
        *,
        new_breaker: Callable[[], Any],
        max_spend_keys: int,
    ) -> None:
        self._router = router
        self._new_breaker = new_breaker
        self._max_spend_keys = max_spend_keys
        self._store = store
        self._merge = merge_for(router.policy)
        self._writer = uuid.uuid4().hex
        self._seq = 0
        self._pid = os.getpid()
        self._worker: ThreadPoolExecutor | None = None
        self._running: Future[SyncStatus] | None = None
        self._lock = threading.Lock()
        self._inflight: Batch | None = None
        self._inflight_updates: list[tuple[int, Decision, float]] = []
        self._base: dict[str, float] = {}
        self._spend_base: dict[str, float] = {}
        self._spend_period = ""
        self._wall_offset = 0
        self._seen: dict[str, tuple[str, float]] = {}
        self._known_at: dict[str, float] = {}
        self._queue: deque[tuple[int, Decision, float]] = deque()
        self._queued_total = 0
        self._opened = False
        self._disabled: str | None = None
        self._records = 0
        self._last_try = -math.inf
        self._last_warn = -math.inf
        self._connected = False
        self._syncs = 0
        self._failures = 0
        self._dropped = 0

    # ------------------------------------------------------------------ router hooks
    def start(self) -> None:
        """Align the budget periods to the store's wall clock and adopt the shared state.

        Raises:
            StateError: the store holds another schema version or another policy.
        """
        router = self._router
        period = router.budget_period_s
        if period is not None:
            with router._lock:  # noqa: SLF001 - the router's other half
                now, wall = router.clock(), self._store.wall_clock()
                # Local period boundaries fall on multiples of the period in wall time.
                router._epoch = now - wall % period  # noqa: SLF001
                router._period = 0  # noqa: SLF001
                self._wall_offset = math.floor(wall / period)
        try:
            # A schema or policy mismatch raises StateError here, from the Router.
            self._open()
        except StoreUnavailableError as exc:
            self._last_try = router.clock()
            self._fail(exc)
            return
        self._opened = True
        self.sync()

    def learned(self, decision: Decision, reward: float) -> None:
        """Called under the router's lock after its policy learned from one reward."""
        if isinstance(self._merge, ReplayMerge):
            self._queued_total += 1
            self._queue.append((self._queued_total, decision, reward))
            if len(self._queue) > self._store.max_queue:
                self._queue.popleft()
                self._dropped += 1

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """After a ``record`` (the router's lock released): sync if one is due."""
        self._records += 1
        store = self._store
        now = self._router.clock()
        elapsed = now - self._last_try
        every = store.sync_every
        if elapsed >= store.sync_interval_s or (
            every is not None and self._records >= every and self._connected
        ):
            if store.background:
                self._sync_in_background()
            else:
                self.sync()

    def _sync_in_background(self) -> None:
        if os.getpid() != self._pid:
            self._worker = None  # a forked child has no worker thread
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pickllm-sync")
        if self._running is None or self._running.done():
            self._running = self._worker.submit(self.sync)

    def wait(self) -> None:
        """Wait for a background sync that is running (tests, shutdown)."""
        if self._running is not None:
            self._running.result()

    # ------------------------------------------------------------------ sync
    def status(self) -> SyncStatus:
        """How sharing is going (see :class:`SyncStatus`)."""
        return SyncStatus(
            store=repr(self._store),
            connected=self._connected,
            syncs=self._syncs,
            failures=self._failures,
            unsent_records=self._records,
            queued_updates=len(self._queue),
            dropped_updates=self._dropped,
        )

    def sync(self) -> SyncStatus:
        """Send what the router learned, adopt the shared totals; never raises.

        When another thread is syncing this router, returns at once.
        """
        if self._disabled is not None or not self._lock.acquire(blocking=False):
            return self.status()
        try:
            self._last_try = self._router.clock()
            if os.getpid() != self._pid:
                self._forked()
            try:
                resent = self._inflight is not None
                self._sync()
                if resent:  # that batch was an old one: send what came since, too
                    self._sync()
            except (StoreUnavailableError, NamespaceMissingError) as exc:
                # Gone again right after being re-created: retried at the next sync.
                self._fail(exc)
            except StateError as exc:
                # Another schema or policy in the namespace: sharing would corrupt it.
                self._disabled = str(exc)
                self._connected = False
                warnings.warn(
                    StoreWarning(f"{exc}; this router keeps learning alone"), stacklevel=3
                )
        finally:
            self._lock.release()
        return self.status()

    def _forked(self) -> None:
        """Take a writer id of its own in a child process.

        A router built before a pre-forking server (gunicorn ``--preload``) forked has
        its parent's id: the store would take its batches for its siblings' resent ones.
        """
        self._pid = os.getpid()
        self._writer = uuid.uuid4().hex
        self._seq = 0
        self._inflight = None  # the parent's to resend, not ours

    def _fail(self, exc: Exception) -> None:
        self._failures += 1
        self._connected = False
        now = self._router.clock()
        if now - self._last_warn >= self._store.warn_interval_s:
            self._last_warn = now
            msg = (
                f"PickLLM store {self._store.name!r} is unreachable ({exc}); routing goes on "
                f"from the local copy: {self._records} records and {len(self._queue)} queued "
                f"updates wait to be sent ({self._dropped} dropped)"
            )
            warnings.warn(StoreWarning(msg), stacklevel=4)

    def _sync(self) -> None:
        store = self._store
        router = self._router
        if not self._opened:
            self._open()
        with router._lock:  # noqa: SLF001
            if self._inflight is None:
                self._inflight = self._take()
            batch = self._inflight
            records = self._records
        try:
            shared = store.exchange(batch)
        except NamespaceMissingError:
            self._open()
            with router._lock:  # noqa: SLF001
                if self._inflight is None:
                    self._inflight = self._take()
                batch = self._inflight
            shared = store.exchange(batch)
        document: Mapping[str, Any] | None = None
        if isinstance(self._merge, ReplayMerge):
            if self._inflight_updates:
                document = store.update_policy(self._replayer(batch))
            else:
                document = store.read_policy()
        with router._lock:  # noqa: SLF001
            self._inflight = None
            sent = self._inflight_updates[-1][0] if self._inflight_updates else 0
            self._inflight_updates = []
            self._adopt(batch, shared, document, sent)
        self._records -= records
        self._syncs += 1
        if not self._connected and self._failures:
            logger.info("PickLLM store %r answers again", store.name)
        self._connected = True
        self._last_warn = -math.inf

    def _open(self) -> None:
        """Open the namespace; if this router (re-)creates it, send everything it knows.

        A namespace that existed and is gone (a Redis restarted without persistence)
        is re-created by the first router that notices, from its local copy, which holds
        every router's learning up to its last sync; the others then send only what
        they have not sent yet.
        """
        schema = self._schema()
        created = self._store.open(schema) == schema["epoch"]
        self._opened = True
        if not created:
            return
        router = self._router
        with router._lock:  # noqa: SLF001
            # Everything local is news to the store: diff against nothing.
            self._base = {}
            self._spend_base = {}
            self._seen = {}
            self._known_at = {}
            self._inflight = None
            self._inflight_updates = []
            state = None
            if isinstance(self._merge, ReplayMerge):
                state = self._merge.state(router.policy)
                self._queue.clear()
        if state is not None:
            writer, seq = self._writer, self._seq
            self._store.update_policy(lambda _: {"state": state, "applied": {writer: seq}})

    def _schema(self) -> dict[str, Any]:
        policy = self._router.policy
        params = {k: v for k, v in policy.get_params().items() if k != "seed"}
        # Through JSON, as the store will hold it (a tuple comes back as a list).
        params = json.loads(json.dumps(params, sort_keys=True, default=repr))
        return {
            "format": "pickllm.state",
            "version": SCHEMA_VERSION,
            "policy": {"name": policy.name, "params": params},
            "merge": self._merge.kind,
            "epoch": uuid.uuid4().hex,
        }

    # ------------------------------------------------------------------ take / adopt
    def _collect(self) -> dict[str, float]:
        """The router's additive fields: policy evidence and statistics."""
        router = self._router
        out = self._merge.sums(router.policy) if isinstance(self._merge, SumsMerge) else {}
        for name, tally in router._tallies.items():  # noqa: SLF001
            for field in _TALLY_FIELDS:
                out[f"s|{field}|{name}"] = float(getattr(tally, field))
        return out

    def _spend(self) -> tuple[str, dict[str, float]]:
        router = self._router
        now = router.clock()
        router._roll(now)  # noqa: SLF001
        period = "all"
        if router.budget_period_s is not None:
            period = str(self._wall_offset + router._period)  # noqa: SLF001
        if period != self._spend_period:
            self._spend_period = period
            self._spend_base = {}
        spend = {"total": router._spent}  # noqa: SLF001
        for key, value in router._spent_by_key.items():  # noqa: SLF001
            spend[f"k|{key}"] = value
        return period, spend

    def _take(self) -> Batch:
        """The batch of what the router learned since the last one (under its lock)."""
        local = self._collect()
        base = self._base
        sums = {k: v - base.get(k, 0.0) for k, v in local.items() if k not in base or v != base[k]}
        self._base = local
        period, spend = self._spend()
        spend_base = self._spend_base
        spend_delta = {
            k: v - spend_base.get(k, 0.0) for k, v in spend.items() if v > spend_base.get(k, 0.0)
        }
        self._spend_base = {k: max(v, spend_base.get(k, 0.0)) for k, v in spend.items()}
        self._inflight_updates = list(self._queue)
        self._seq += 1
        period_s = self._router.budget_period_s
        return Batch(
            writer=self._writer,
            seq=self._seq,
            sums=sums,
            spend_period=period,
            spend=spend_delta,
            spend_ttl_s=None if period_s is None else 2.0 * period_s,
            breakers=self._breaker_changes(),
        )

    def _replayer(self, batch: Batch) -> Any:
        merge = cast("ReplayMerge", self._merge)  # _sync checked it
        policy = self._router.policy
        updates = [(d, r) for _, d, r in self._inflight_updates]
        writer, seq = batch.writer, batch.seq

        def replay(document: Mapping[str, Any] | None) -> dict[str, Any]:
            applied = dict(document["applied"]) if document is not None else {}
            if applied.get(writer, 0) >= seq:
                return dict(document or {})  # applied before its reply was lost
            state = None if document is None else document["state"]
            applied[writer] = seq
            if len(applied) > _MAX_WRITERS:
                del applied[next(iter(applied))]
            return {"state": merge.replay(policy, state, updates), "applied": applied}

        return replay

    def _adopt(
        self,
        batch: Batch,
        shared: Shared,
        document: Mapping[str, Any] | None,
        sent: int,
    ) -> None:
        """Adopt the shared totals plus what was learned since the batch (under the lock)."""
        router = self._router
        local = self._collect()
        base = self._base
        target = dict(shared.sums)
        for key, value in local.items():
            since = value - base.get(key, 0.0)
            if since:
                target[key] = target.get(key, 0.0) + since
        if isinstance(self._merge, SumsMerge):
            self._merge.load(router.policy, {k: v for k, v in target.items() if k[0] == "p"})
        self._load_tallies(target)
        self._base = dict(shared.sums)
        if isinstance(self._merge, ReplayMerge):
            self._adopt_replayed(document, sent)
        self._adopt_spend(batch, shared)
        self._adopt_breakers(shared.breakers)

    def _adopt_replayed(self, document: Mapping[str, Any] | None, sent: int) -> None:
        """Adopt the shared replayed state, then re-apply the updates not yet sent."""
        router = self._router
        merge = cast("ReplayMerge", self._merge)
        queue = self._queue
        while queue and queue[0][0] <= sent:
            queue.popleft()
        if document is not None and "state" in document:
            merge.load(router.policy, document["state"])
            for _, decision, reward in queue:
                router.policy.update(decision, reward)

    def _adopt_spend(self, batch: Batch, shared: Shared) -> None:
        """Adopt the period's shared spend plus what was charged since the batch."""
        router = self._router
        period, spend = self._spend()
        if period != batch.spend_period:
            return
        spend_base = self._spend_base
        total = shared.spend.get("total", 0.0) + spend["total"] - spend_base.get("total", 0.0)
        router._spent = total  # noqa: SLF001
        by_key = router._spent_by_key  # noqa: SLF001
        for field, value in shared.spend.items():
            if field.startswith("k|"):
                key = field[2:]
                by_key[key] = value + by_key.get(key, 0.0) - spend_base.get(field, 0.0)
        while len(by_key) > self._max_spend_keys:
            by_key.popitem(last=False)
        self._spend_base = dict(shared.spend)

    def _load_tallies(self, target: Mapping[str, float]) -> None:
        tallies = self._router._tallies  # noqa: SLF001
        for key, value in target.items():
            if key[0] != "s":
                continue
            _, field, name = key.split("|", 2)
            tally = tallies.get(name)
            if tally is not None and field in _TALLY_FIELDS:
                setattr(tally, field, round(value) if field in _INT_FIELDS else value)

    # ------------------------------------------------------------------ circuit state
    def _breaker_changes(self) -> dict[str, BreakerEvent]:
        router = self._router
        if router.breaker_failures is None:
            return {}
        now, wall = router.clock(), self._store.wall_clock()
        events: dict[str, BreakerEvent] = {}
        for name, breaker in router._breakers.items():  # noqa: SLF001
            current = ("closed", 0.0) if breaker.state == "closed" else ("open", breaker.opened_at)
            if current == self._seen.get(name, ("closed", 0.0)):
                continue
            self._seen[name] = current
            if current[0] == "open":
                event = BreakerEvent("open", wall - (now - breaker.opened_at), breaker.failures)
            else:
                event = BreakerEvent("closed", wall, 0)
            self._known_at[name] = event.at
            events[name] = event
        return events

    def _adopt_breakers(self, shared: Mapping[str, BreakerEvent]) -> None:
        router = self._router
        if router.breaker_failures is None:
            return
        now, wall = router.clock(), self._store.wall_clock()
        breakers = router._breakers  # noqa: SLF001
        for name, event in shared.items():
            if event.at <= self._known_at.get(name, -math.inf) or name not in router.names:
                continue
            self._known_at[name] = event.at
            breaker = breakers.get(name)
            if breaker is None:
                breaker = breakers[name] = self._new_breaker()
            if event.state == "open":
                breaker.state = "open"
                breaker.opened_at = now - max(wall - event.at, 0.0)
                breaker.probe_at = None
                breaker.failures = max(breaker.failures, event.failures)
                self._seen[name] = ("open", breaker.opened_at)
            else:
                breaker.state = "closed"
                breaker.failures = 0
                self._seen[name] = ("closed", 0.0)
        router._not_closed = sum(b.state != "closed" for b in breakers.values())  # noqa: SLF001
