"""The package's public names, and what importing it does (and does not) pull in."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import langchain_pickllm

EXPECTED_ALL = [
    "ChatPickLLM",
    "FakeToolChatModel",
    "LLMJudge",
    "PickLLMMiddleware",
    "ReplayChatModel",
    "from_langsmith",
    "from_messages",
]


def test_all_is_pinned() -> None:
    assert sorted(langchain_pickllm.__all__) == EXPECTED_ALL
    for name in EXPECTED_ALL:
        assert getattr(langchain_pickllm, name) is not None


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_importing_does_not_import_llama_index_or_load_data() -> None:
    done = _run(
        """
        import sys
        import langchain_pickllm
        import pickllm.evaluation, pickllm.replay
        print(any(m.startswith("llama_index") for m in sys.modules))
        print(pickllm.replay._cached_store.cache_info().currsize)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0"]


def test_pickllm_core_does_not_import_langchain() -> None:
    done = _run(
        """
        import sys
        import pickllm, pickllm.evaluation, pickllm.replay, pickllm.engine
        print(any(m.startswith("langchain") for m in sys.modules))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def test_importing_without_langchain_core_names_the_extra() -> None:
    done = _run(
        """
        import sys
        sys.modules["langchain_core"] = None  # as if it were not installed
        try:
            import langchain_pickllm
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install "pickllm[langchain]"' in done.stdout


def test_the_middleware_is_imported_only_when_asked_for() -> None:
    done = _run(
        """
        import sys
        import langchain_pickllm
        print("langchain.agents" in sys.modules)
        langchain_pickllm.PickLLMMiddleware
        print("langchain.agents" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
