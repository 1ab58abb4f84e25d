"""The Redis snippets of the docs run against a real Redis.

README.md's "Running several processes" section and its long form,
docs/several-processes.md: their blocks marked ``# Needs Redis`` (which
tests/test_readme.py leaves to this test) and the others, in order, in one namespace
per document, with the README's offline provider fakes (tests/test_readme.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RedisServer
from tests.test_readme import install_provider_fakes

pytestmark = pytest.mark.enable_socket

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Running several processes"
MARKER = "# Needs Redis"


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"no {HEADING!r} section in README.md"
    return re.split(r"\n## ", text.split(HEADING, 1)[1], maxsplit=1)[0]


def _docs_page() -> str:
    return (ROOT / "docs" / "several-processes.md").read_text(encoding="utf-8")


DOCUMENTS: dict[str, Callable[[], str]] = {
    "README.md": _readme_section,
    "docs/several-processes.md": _docs_page,
}


@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_the_snippets_run(
    document: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICKLLM_REDIS_URL", redis_server.url)
    install_provider_fakes(monkeypatch)
    blocks = re.findall(r"```python\n(.*?)```", DOCUMENTS[document](), re.DOTALL)
    assert len(blocks) >= 3
    assert sum(block.startswith(MARKER) for block in blocks) >= 2
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{document} block {number}", "exec"), namespace)  # noqa: S102
