"""The verifier: a translation passes only when it finishes thinking and ends on the value the
program returned."""

import json

import pytest

from translate.answer import NoAnswer, final_answer, split_thinking, verify


def test_a_right_answer_on_a_marked_line_passes_and_the_assistant_turn_is_the_text_after_thinking():
    text = "<think>\nn is 3, so the loop adds 0+1+2.\n</think>\n\nThe sum is 3.\n\nFinal answer: 3"
    verdict = verify(text, "3")
    assert verdict.ok
    assert verdict.answer_text == "The sum is 3.\n\nFinal answer: 3"
    assert verdict.final_answer == "3"


def test_a_wrong_answer_is_rejected_with_both_values_in_the_detail():
    verdict = verify("<think>ok</think>\nFinal answer: [1, 2]", "[1, 3]")
    assert (verdict.ok, verdict.reason) == (False, "wrong_answer")
    assert "[1, 2]" in verdict.detail and "[1, 3]" in verdict.detail


def test_unfinished_thinking_is_rejected_even_when_the_answer_is_in_it():
    verdict = verify("<think>the output is 5. Final answer: 5", "5")
    assert (verdict.ok, verdict.reason) == (False, "unfinished_thinking")


def test_an_answer_with_no_thinking_block_is_a_model_that_does_not_think_and_is_checked_whole():
    verdict = verify("Adding 1 and 2 gives 3.\nFinal answer: 3", "3")
    assert verdict.ok and verdict.answer_text == "Adding 1 and 2 gives 3.\nFinal answer: 3"
    assert verify("Adding 1 and 2 gives 4.\nFinal answer: 4", "3").reason == "wrong_answer"
    # a thinking block that opened is still one that must close
    assert verify("<think>1 + 2 = 3\nFinal answer: 3", "3").reason == "unfinished_thinking"


def test_nothing_after_the_thinking_is_rejected():
    assert verify("<think>5</think>   ", "5").reason == "empty_answer"


def test_gibberish_has_no_final_answer():
    verdict = verify("<think>x</think>\nqwe rty, uiop asdf ghjk", "12")
    assert (verdict.ok, verdict.reason) == (False, "no_final_answer")


@pytest.mark.parametrize("answer_text, returned", [
    ("Adding up, the output is 10.", 10),
    ("So the answer is **[1, 2, 3]**.", [1, 2, 3]),
    ("The function returns 'abc'.", "abc"),
    ("Result:\n```json\n{\"a\": 1, \"b\": [true, null]}\n```", {"a": 1, "b": [True, None]}),
    ("Final answer: (1, 2)", [1, 2]),  # a Python tuple is the JSON array the program returned
    ("Final answer: {'x': 0.30000000000000004}", {"x": 0.3}),  # floats within tolerance
    ("Final answer: \"it's \\\"quoted\\\"\"", "it's \"quoted\""),
    ("Final answer:\n[[0, 1],\n [1, 0]]", [[0, 1], [1, 0]]),
    ("Final answer: True", True),
])
def test_answers_in_prose_fences_and_python_literals_are_read(answer_text, returned):
    assert verify(f"<think>t</think>\n{answer_text}", json.dumps(returned)).ok


def test_booleans_are_not_numbers_and_strings_are_not_numbers():
    assert verify("<think>t</think>\nFinal answer: 1", "true").reason == "wrong_answer"
    assert verify("<think>t</think>\nFinal answer: 42", '"42"').reason == "wrong_answer"


def test_the_last_marked_answer_wins():
    text = "Final answer: 1\nWait, I made a mistake.\nFinal answer: 2"
    assert final_answer(text) == 2


def test_a_model_without_thinking_is_checked_on_its_whole_text():
    assert split_thinking("Final answer: 1", thinking=False) == ("", "Final answer: 1")
    assert verify("Final answer: 1", "1", thinking=False).ok


def test_text_with_no_value_at_all_raises():
    with pytest.raises(NoAnswer):
        final_answer("I am not sure what this returns")
