"""PickLLM's weighted reward of quality, cost and latency.

PickLLM scores a call as ``R = w_q*q - w_c*c - w_l*log10(t_scaling*latency)`` and needs the
reward in [0, 1] for its learning automaton. We normalise each term to [0, 1] with fixed,
documented bounds (never with running statistics, so a reward means the same thing on the
first call and the millionth):

* quality ``q``: the score in [0, 1] as given.
* cost ``c``: the call's actual cost (reported, or its tokens times its model's prices).
  With ``cost_scale`` set, ``min(cost / cost_scale, 1)``. Otherwise against a scale the pool
  gives, with no user input: ``(cost - lo) / (hi - lo)`` clipped to [0, 1], where ``lo``
  reads the call's prompt at the pool's lowest input price (and writes nothing), and ``hi``
  reads it at the highest input price and writes ``reference_output_tokens`` (256) at the
  highest output price. The scale depends on the prompt's length but not on the answer's, so
  a longer, costlier answer costs more reward on any model; an answer the dearest model
  writes past the reference length costs fully. A pool of free models gives ``c = 0``.
* latency ``l``: ``log10(max(t_scaling * latency, 1)) / log10(t_scaling * latency_max_s)``
  clipped to [0, 1] (reading (ii) of the paper, latency in ms with the default
  ``t_scaling=1000``): 1 ms or less costs nothing, ``latency_max_s`` or more costs fully.

The reward is the weighted mean ``(w_q*q + w_c*(1-c) + w_l*(1-l)) / (w_q + w_c + w_l)``, which
is exactly the min-max normalisation of PickLLM's ``R`` over those bounds.

A failed call gets the worst reward, 0. A call with no quality score (``quality=None``) is
scored by ``missing_quality``: ``None`` (the default) drops the quality term and averages the
remaining terms with their weights; a number in [0, 1] is used as the score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pickllm.errors import ConfigError, ConfigTypeError
from pickllm.types import Candidate, Feedback, check_number

__all__ = ["Objective", "PriceRange"]


def _weight(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        msg = f"Objective weight {name} must be a number, got {value!r}"
        raise ConfigTypeError(msg)
    if not math.isfinite(value) or value < 0:
        msg = f"Objective weight {name} must be a finite number >= 0, got {value!r}"
        raise ConfigError(msg)
    return float(value)


def _positive(name: str, value: object, allowed: str) -> None:
    msg = f"Objective {name} must be {allowed}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(msg)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(msg)


def _penalty(value: float) -> float:
    """``value`` clipped to [0, 1]; a NaN (an overflow of huge prices) is the full penalty."""
    if math.isnan(value):
        return 1.0
    return min(max(value, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class PriceRange:
    """The lowest and highest per-token prices of a pool (USD per 1M tokens).

    Examples:
        >>> pr = PriceRange.of([Candidate(name="a", input_price=1, output_price=2),
        ...                     Candidate(name="b", input_price=5, output_price=15)])
        >>> pr.bounds(1_000_000, 0)
        (1.0, 5.0)
    """

    min_input: float = 0.0
    max_input: float = 0.0
    min_output: float = 0.0
    max_output: float = 0.0

    @classmethod
    def of(cls, candidates: Iterable[Candidate]) -> PriceRange:
        """The price range of ``candidates`` (all zero for an empty pool)."""
        cands = list(candidates)
        if not cands:
            return cls()
        ins = [c.input_price for c in cands]
        outs = [c.output_price for c in cands]
        return cls(min(ins), max(ins), min(outs), max(outs))

    def bounds(self, input_tokens: int, output_tokens: int) -> tuple[float, float]:
        """Cheapest and dearest cost of a call with these tokens, in USD."""
        lo = (input_tokens * self.min_input + output_tokens * self.min_output) / 1e6
        hi = (input_tokens * self.max_input + output_tokens * self.max_output) / 1e6
        return lo, hi


@dataclass(frozen=True, slots=True, kw_only=True)
class Objective:
    """What the router optimises: weights on quality, cost and latency.

    Args:
        quality: weight of the answer-quality score.
        cost: weight of the (normalised) cost.
        latency: weight of the (normalised, log-scaled) latency.
        cost_scale: USD per call that counts as the full cost penalty; None normalises
            against the pool's prices (see the module docstring).
        reference_output_tokens: with ``cost_scale`` None, the answer length that, written
            by the pool's dearest model, counts as the full cost penalty.
        t_scaling: PickLLM's time-scaling constant inside the log (1000: seconds to ms).
        latency_max_s: latency that counts as the full latency penalty.
        missing_quality: score used when a call has no quality score; None drops the
            quality term for that call.

    Raises:
        ConfigError: a value is NaN, infinite, negative or out of range, the weights are
            all zero or sum to infinity, or ``t_scaling * latency_max_s`` is not finite and
            above 1 (rewards are then always finite and in [0, 1]).
        ConfigTypeError: a value is not a number.

    Examples:
        >>> obj = Objective(quality=1.0, cost=0.5, latency=0.2)
        >>> round(obj.reward(Feedback(quality=1.0, latency_s=0.001)), 4)
        1.0
        >>> obj.reward(Feedback(error="TimeoutError"))
        0.0
    """

    quality: float = 1.0
    cost: float = 0.5
    latency: float = 0.2
    cost_scale: float | None = None
    reference_output_tokens: int = 256
    t_scaling: float = 1000.0
    latency_max_s: float = 60.0
    missing_quality: float | None = None

    def __post_init__(self) -> None:
        total = (
            _weight("quality", self.quality)
            + _weight("cost", self.cost)
            + _weight("latency", self.latency)
        )
        if total <= 0:
            msg = (
                "Objective weights must not all be zero, got "
                f"quality={self.quality!r}, cost={self.cost!r}, latency={self.latency!r}"
            )
            raise ConfigError(msg)
        if not math.isfinite(total):
            msg = (
                "Objective weights must have a finite sum, got "
                f"quality={self.quality!r}, cost={self.cost!r}, latency={self.latency!r}"
            )
            raise ConfigError(msg)
        if self.cost_scale is not None:
            _positive("cost_scale", self.cost_scale, "a positive number or None")
        ref = self.reference_output_tokens
        msg = f"Objective reference_output_tokens must be a positive int, got {ref!r}"
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise ConfigTypeError(msg)
        if ref <= 0:
            raise ConfigError(msg)
        _positive("t_scaling", self.t_scaling, "a positive number")
        if isinstance(self.latency_max_s, bool) or not isinstance(self.latency_max_s, int | float):
            msg = f"Objective latency_max_s must be a number, got {self.latency_max_s!r}"
            raise ConfigTypeError(msg)
        # The product is the log's argument: it must be finite, or every penalty is NaN.
        span = self.t_scaling * self.latency_max_s
        if not (math.isfinite(self.latency_max_s) and math.isfinite(span) and span > 1):
            msg = (
                "Objective latency_max_s must be finite with t_scaling * latency_max_s finite "
                f"and > 1, got latency_max_s={self.latency_max_s!r} "
                f"(t_scaling={self.t_scaling!r})"
            )
            raise ConfigError(msg)
        check_number("Objective", "missing_quality", self.missing_quality, high=1.0, optional=True)

    @classmethod
    def cost_first(cls, **overrides: Any) -> Objective:
        """Preset weighting cost most (0.2, 0.6, 0.2)."""
        return cls(**{"quality": 0.2, "cost": 0.6, "latency": 0.2, **overrides})

    @classmethod
    def accuracy_first(cls, **overrides: Any) -> Objective:
        """Preset weighting quality most (0.6, 0.2, 0.2)."""
        return cls(**{"quality": 0.6, "cost": 0.2, "latency": 0.2, **overrides})

    @classmethod
    def parse(cls, spec: str) -> Objective:
        """Build from a string such as ``"quality=1,cost=0.5,latency=0.1"``.

        Examples:
            >>> Objective.parse("quality=1,cost=0.5,latency=0").cost
            0.5
        """
        allowed = {
            "quality",
            "cost",
            "latency",
            "cost_scale",
            "reference_output_tokens",
            "t_scaling",
            "latency_max_s",
        }
        values: dict[str, Any] = {"quality": 0.0, "cost": 0.0, "latency": 0.0}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in allowed:
                msg = (
                    f"objective term {part!r} is not of the form NAME=NUMBER with NAME in "
                    f"{sorted(allowed)}"
                )
                raise ConfigError(msg)
            # A token count is a whole number; every other term is a float.
            kind = int if name == "reference_output_tokens" else float
            try:
                values[name] = kind(raw)
            except ValueError as exc:
                what = "a whole number" if kind is int else "a number"
                msg = f"objective term {name} must be {what}, got {raw.strip()!r}"
                raise ConfigError(msg) from exc
        return cls(**values)

    def cost_penalty(self, feedback: Feedback, prices: PriceRange | None = None) -> float:
        """The cost term in [0, 1] (0 = cheapest)."""
        if self.cost_scale is not None:
            return _penalty(feedback.cost_usd / self.cost_scale)
        if prices is None:
            return 0.0
        lo, _ = prices.bounds(feedback.input_tokens, 0)
        _, hi = prices.bounds(feedback.input_tokens, self.reference_output_tokens)
        if not hi > lo:
            return 0.0
        return _penalty((feedback.cost_usd - lo) / (hi - lo))

    def latency_penalty(self, latency_s: float) -> float:
        """The latency term in [0, 1] (0 = instant)."""
        scaled = self.t_scaling * latency_s
        if not scaled > 1.0:
            return 0.0
        return _penalty(math.log10(scaled) / math.log10(self.t_scaling * self.latency_max_s))

    def reward(self, feedback: Feedback, prices: PriceRange | None = None) -> float:
        """The reward in [0, 1] of one call (0 for a failed call)."""
        if feedback.error is not None:
            return 0.0
        num = 0.0
        den = 0.0
        w = self.cost
        if w:
            num += w * (1.0 - self.cost_penalty(feedback, prices))
            den += w
        w = self.latency
        if w:
            num += w * (1.0 - self.latency_penalty(feedback.latency_s))
            den += w
        if self.quality:
            q = feedback.quality if feedback.quality is not None else self.missing_quality
            if q is not None:
                num += self.quality * q
                den += self.quality
        if den == 0.0:
            # Only the quality term has weight and the call is unscored.
            return 0.5
        return min(max(num / den, 0.0), 1.0)

    def as_dict(self) -> dict[str, float | None]:
        """The objective's parameters, JSON-ready."""
        return {
            "quality": self.quality,
            "cost": self.cost,
            "latency": self.latency,
            "cost_scale": self.cost_scale,
            "reference_output_tokens": self.reference_output_tokens,
            "t_scaling": self.t_scaling,
            "latency_max_s": self.latency_max_s,
            "missing_quality": self.missing_quality,
        }
