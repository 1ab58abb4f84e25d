"""Every ```python block of README.md runs, section by section, offline.

The blocks of one ``##`` section run in order in one namespace, in a temporary folder.
Only the provider classes a reader would install are replaced, by offline fakes that
answer with a fixed text and report token usage: ``langchain_openai.ChatOpenAI`` and
``llama_index.llms.openai.OpenAI``. Everything else is the real package.

A block whose first line starts with ``# Needs Redis`` needs a real Redis server: it is
left out here and run by ``tests/integration/test_readme_redis.py``, which starts one
(such blocks belong in the section "Running several processes", which that test reads).
The python blocks of docs/cascades.md, the long form of the README's "Cascades" section,
run here too.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback

from langchain_pickllm import FakeToolChatModel

README = Path(__file__).resolve().parents[1] / "README.md"
CASCADES_DOC = README.parent / "docs" / "cascades.md"
FENCE = re.compile(r"^```(\w*)\s*$")
NEEDS_REDIS = "# Needs Redis"
REDIS_SECTION = "Running several processes"


def sections(path: Path = README) -> dict[str, list[str]]:
    """The python blocks of a Markdown file by ``##`` section, in order."""
    found: dict[str, list[str]] = {}
    heading, block, language = "(top)", list[str](), None
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line)
        if language is None and fence is not None:
            language, block = fence.group(1), []
        elif language is not None and line.rstrip() == "```":
            if language == "python":
                found.setdefault(heading, []).append("\n".join(block))
            language = None
        elif language is not None:
            block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
    return found


ALL_SECTIONS = sections()
SECTIONS = {
    heading: runnable
    for heading, blocks in ALL_SECTIONS.items()
    if (runnable := [block for block in blocks if not block.startswith(NEEDS_REDIS)])
}


class FakeChatOpenAI(FakeToolChatModel):
    """``langchain_openai.ChatOpenAI`` for the README: offline, reports provider openai."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("answer", f"An answer from {kwargs.get('model', 'the model')}.")
        super().__init__(**kwargs)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params


class FakeOpenAI(CustomLLM):
    """``llama_index.llms.openai.OpenAI`` for the README: offline, reports its usage.

    Its class lives, as far as PickLLM can tell, where the real one does (the provider of a
    LlamaIndex LLM is read from its ``llama_index.llms.<provider>`` package).
    """

    __module__ = "llama_index.llms.openai.base"

    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        del formatted, kwargs
        usage = {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": 8}
        return CompletionResponse(text=f"An answer from {self.model}.", raw={"usage": usage})

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        response = self.complete(prompt, formatted=formatted, **kwargs)
        yield CompletionResponse(text=response.text, delta=response.text, raw=response.raw)


def install_provider_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider modules the README imports, as offline fakes (undone by ``monkeypatch``)."""
    langchain_openai = types.ModuleType("langchain_openai")
    langchain_openai.ChatOpenAI = FakeChatOpenAI  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_openai", langchain_openai)
    llms = types.ModuleType("llama_index.llms")
    llms.__path__ = []
    openai = types.ModuleType("llama_index.llms.openai")
    openai.OpenAI = FakeOpenAI  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_index.llms", sys.modules.get("llama_index.llms", llms))
    monkeypatch.setitem(sys.modules, "llama_index.llms.openai", openai)


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The provider modules the README imports, as offline fakes; a temporary folder."""
    install_provider_fakes(monkeypatch)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_snippets_of_a_section_run_in_order(
    section: str, providers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {"__name__": f"readme_{section}"}
    from llama_index.core import Settings

    llm_before = Settings._llm
    try:
        for number, code in enumerate(SECTIONS[section], 1):
            exec(compile(code, f"README.md [{section}] block {number}", "exec"), namespace)  # noqa: S102
    finally:
        Settings._llm = llm_before
    assert "Traceback" not in capsys.readouterr().err


def test_the_blocks_that_need_redis_are_run_by_the_redis_test() -> None:
    needing = [
        heading
        for heading, blocks in ALL_SECTIONS.items()
        for block in blocks
        if block.startswith(NEEDS_REDIS)
    ]
    assert needing, f"no block marked {NEEDS_REDIS!r}: is the marker still in use?"
    assert set(needing) == {REDIS_SECTION}


@pytest.mark.parametrize("section", list(sections(CASCADES_DOC)))
def test_the_cascades_page_runs(section: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"__name__": "cascades_doc"}
    for number, code in enumerate(sections(CASCADES_DOC)[section], 1):
        exec(compile(code, f"docs/cascades.md [{section}] block {number}", "exec"), namespace)  # noqa: S102
    assert "Traceback" not in capsys.readouterr().err


def test_the_readme_is_in_the_order_a_user_needs() -> None:
    text = README.read_text(encoding="utf-8")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    wanted = [
        "Install",
        "Two commands",
        "Use it in LangChain",
        "Use it in LlamaIndex",
        "The objective",
        "Policies",
        "`pickllm bench` and your own data",
        "Measured numbers",
        "Development",
    ]
    positions = [next(i for i, h in enumerate(headings) if h.startswith(w)) for w in wanted]
    assert positions == sorted(positions)
    assert "pip install pickllm\n" not in text  # not on PyPI: install from a checkout
    assert 'pip install -e ".[langchain]"' in text


def test_the_snippets_that_need_a_provider_are_shown_with_it() -> None:
    code = "\n".join(block for blocks in SECTIONS.values() for block in blocks)
    assert "from langchain_openai import ChatOpenAI" in code
    assert "from llama_index.llms.openai import OpenAI" in code
    assert len(SECTIONS) >= 4
