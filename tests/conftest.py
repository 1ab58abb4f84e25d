"""Suite-wide settings: deterministic property tests, no network."""

from __future__ import annotations

from hypothesis import settings

# Property tests draw the same examples on every run and write no example database.
settings.register_profile("pickllm", derandomize=True, database=None, deadline=None)
settings.load_profile("pickllm")
