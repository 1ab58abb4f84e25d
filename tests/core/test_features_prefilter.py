"""The code feature's substring prefilter never changes the feature (it only skips work)."""

from __future__ import annotations

from pickllm.data import load_outcomes
from pickllm.policies import features


def test_the_prefilter_gives_the_regexs_answer_on_real_prompts() -> None:
    prompts = [p[: features.MAX_CHARS] for p in load_outcomes("routerbench_subset").prompts[:600]]
    prompts += ["x = 1;", "if (a) {", "def f(): return 1", "plain prose, no code at all"]
    index = features.FEATURE_NAMES.index("code")
    for text in prompts:
        assert features.structural_features(text)[index] == float(bool(features._CODE.search(text)))
