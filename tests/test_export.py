"""The training examples' layout: where the reasoning goes (the visible answer, or a think block
with the final answer after it), what dataset_info.json says of it, and the examples' lengths
in characters when no tokenizer counts them."""

from __future__ import annotations

import pytest

from translate.export import (
    BuildSettings,
    assistant_turn,
    dataset_info,
    example_length,
    length_bin,
    training_example,
)

REASONING = "Line 2: `total` becomes 3.\nLine 3: we return `total`.\n\nSo the output is 3.\n\nFinal answer: 3"
ITEM = {"id": "p-0", "problem_id": "p", "task": "output", "refcode": "def f(x):\n    return x\n",
        "funcname": "f", "input": '{"x": 3}', "value_format": "json",
        "problem_description": "identity", "io_requirements": ""}


def test_the_reasoning_is_the_visible_answer_by_default():
    assert assistant_turn(REASONING, "answer") == REASONING


def test_in_the_think_layout_the_steps_are_thought_and_the_final_answer_follows():
    turn = assistant_turn(REASONING, "think")
    assert turn == ("<think>\nLine 2: `total` becomes 3.\nLine 3: we return `total`.\n\n"
                    "So the output is 3.\n</think>\n\nFinal answer: 3")
    # no marked final answer: the last paragraph is the answer
    assert assistant_turn("Step one.\n\nThe output is 3.", "think") == (
        "<think>\nStep one.\n</think>\n\nThe output is 3.")


def test_dataset_info_names_the_layout_and_the_template_that_trains_it():
    for layout, template in (("answer", "qwen3_nothink"), ("think", "qwen3")):
        info = dataset_info(reasoning_in=layout)
        for entry in ("groundtrace", "groundtrace_parquet"):
            assert info[entry]["groundtrace"] == {"reasoning_in": layout,
                                                  "llamafactory_template": template}
            assert info[entry]["formatting"] == "sharegpt"


def test_a_layout_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="reasoning_in must be one of answer, think"):
        BuildSettings(reasoning_in="system")


def test_without_a_tokenizer_an_example_is_measured_in_characters():
    example = training_example(ITEM, REASONING, BuildSettings())
    unit, length = example_length(example)
    assert unit == "characters" and example["tokens"] is None
    assert length == sum(len(m["content"]) for m in example["messages"]) > len(REASONING)
    assert [length_bin(n) for n in (0, 511, 512, 3700, 40000)] == [
        "<512", "<512", "512-1024", "2048-4096", ">=32768"]
