"""Every Python block of docs/prices-and-feedback.md runs, offline, on its own."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "prices-and-feedback.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture(autouse=True)
def restore_llama_index_settings() -> Iterator[None]:
    saved = dict(vars(Settings))
    try:
        yield
    finally:
        vars(Settings).clear()
        vars(Settings).update(saved)


def test_the_document_has_snippets() -> None:
    assert len(BLOCKS) == 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_snippet_runs(index: int) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(BLOCKS[index], f"{DOC.name}[{index}]", "exec"), {})  # noqa: S102
    if index == 1:
        assert "no price for model(s) ['my-llama']" in out.getvalue()
