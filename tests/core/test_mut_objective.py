"""Objective details pinned down for mutation testing (see [tool.mutmut] in pyproject.toml)."""

from __future__ import annotations

import pytest

from pickllm import ConfigError, Objective


def test_parse_splits_a_term_at_its_first_equals_sign() -> None:
    # "quality=1=2" is the term quality with the value "1=2", which is not a number.
    with pytest.raises(ConfigError) as info:
        Objective.parse("quality=1=2")
    assert str(info.value) == "objective term quality must be a number, got '1=2'"
