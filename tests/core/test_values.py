"""The per-call values are frozen, keyword-only dataclasses that validate their fields."""

from __future__ import annotations

import dataclasses

import pytest

from pickllm import Candidate, ConfigError, Decision, Feedback
from pickllm.policies import Choice
from pickllm.pricing import Usage


def test_values_keep_signature_defaults_validation_and_frozenness() -> None:
    a = Candidate(name="a")
    d = Decision(decision_id="d", candidate=a, ranking=(a,), probability=1.0, policy="p")
    assert (d.key, d.plan, d.scores) == (None, None, None)
    assert d == dataclasses.replace(d, key=None)
    assert hash(d) == hash(Decision(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.key = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Decision("d", a, (a,), 1.0, "p")  # type: ignore[call-arg]  # keyword-only, as declared
    with pytest.raises(ConfigError, match="quality"):
        Feedback(quality=1.5)  # __post_init__ still runs
    with pytest.raises(ConfigError, match="input_tokens"):
        Usage(input_tokens=-1)
    assert Choice(1, 0.5).scores is None  # positional fields stay positional
