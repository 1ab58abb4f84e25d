"""The "Running several processes" README section's snippets run, against a real Redis."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.enable_socket

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Running several processes"


def _section() -> str:
    """The section, from README.md once it is there, else from its draft under docs/."""
    for path in (ROOT / "README.md", ROOT / "docs" / "readme-several-processes.md"):
        if path.exists() and HEADING in (text := path.read_text(encoding="utf-8")):
            body = text.split(HEADING, 1)[1]
            return re.split(r"\n## ", body, maxsplit=1)[0]
    pytest.fail(f"no {HEADING!r} section in README.md or docs/readme-several-processes.md")


def test_the_sections_snippets_run(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICKLLM_REDIS_URL", redis_server.url)
    blocks = re.findall(r"```python\n(.*?)```", _section(), re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, HEADING, "exec"), {"__name__": "__readme__"})  # noqa: S102
