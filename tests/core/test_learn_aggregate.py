from __future__ import annotations

import pytest

from pickllm.errors import ConfigError
from pickllm.learn.aggregate import Vote, choice_letter, exact_string, get_extractor, number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("C\n", "C"),
        ("A) dry palms", "A"),
        ("(D) none of these", "D"),
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("After thinking, I pick (A) then (C)", "C"),
        ("I do not know", None),
        ("the answer is a long story", None),
        ("", None),
    ],
)
def test_choice_letter(text: str, expected: str | None) -> None:
    assert choice_letter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She has 1,250 apples.", "1250"),
        ("First 3, then #### 42", "42"),
        ("x = -3.50", "-3.5"),
        ("12.0", "12"),
        ("ratio .5", "0.5"),
        ("none", None),
    ],
)
def test_number(text: str, expected: str | None) -> None:
    assert number(text) == expected


def test_exact_string_normalises_case_punctuation_and_articles() -> None:
    assert exact_string("The  Eiffel Tower!") == exact_string("eiffel tower")
    assert exact_string("...") is None


def test_majority_vote_returns_a_member_that_gave_the_winning_answer() -> None:
    vote = Vote(extractor="choice")
    answers = ["A", "The answer is (B).", "B\n", "A) x", "B"]
    assert vote(answers, None) == ("The answer is (B).", 1)
    result = vote.vote(answers)
    assert result.key == "B"
    assert result.support == 3.0
    assert result.keys == ("A", "B", "B", "A", "B")


def test_weighted_vote_can_overrule_the_majority() -> None:
    answers = ["A", "B", "B"]
    weights = [0.95, 0.4, 0.4]
    assert Vote(extractor="choice", mode="majority")(answers, weights)[1] == 1
    assert Vote(extractor="choice", mode="weighted")(answers, weights)[1] == 0


def test_ties_go_to_more_confidence_then_to_member_order() -> None:
    vote = Vote(extractor="choice")
    assert vote(["A", "B"], [0.4, 0.6])[1] == 1
    assert vote(["A", "B"], [0.5, 0.5])[1] == 0
    assert vote(["A", "B"])[1] == 0


def test_unextractable_answers_do_not_vote() -> None:
    vote = Vote(extractor="choice")
    assert vote(["I do not know", "I refuse", "C"])[1] == 2
    result = vote.vote(["no idea", "nope"])
    assert result.key is None
    assert result.index == 0


def test_custom_extractor_and_errors() -> None:
    first_word = Vote(extractor=lambda t: t.split()[0].lower() if t.split() else None)
    assert first_word(["Paris is", "paris!", "Lyon"])[1] == 0
    with pytest.raises(ConfigError, match="unknown extractor"):
        get_extractor("letters")
    with pytest.raises(ConfigError, match="mode"):
        Vote(mode="plurality")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one"):
        Vote()([])
    with pytest.raises(ConfigError, match="weights"):
        Vote()(["a", "b"], [1.0])
