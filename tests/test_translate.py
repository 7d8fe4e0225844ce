"""Translate, verify and build: prompts, the real vLLM engine through ray.data.llm (on the CPU,
with a tiny model built here), the LLM-free renderer, and the training data they make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, program, read_rows, write_jsonl

from jobs import cli
from trace_workers.stream import REQUEST
from translate.llm import LLMSettings, make_preprocess
from translate.stage import PASSTHROUGH, PROMPT_REJECT
from translate.tasks import training_prompt, translation_prompt

TRACE_ROW = {
    "id": "abc-0", "problem_id": "abc", "problem_description": "Add two numbers.",
    "io_requirements": "Input: a, b (int). Output: int.", "funcname": "main_solution",
    "refcode": "def main_solution(a, b):\n    return a + b\n", "input": '{"a": 1, "b": 2}',
    "expected_output": "3", "returned": "3", "trace_lines": 4, "status": "ok",
    "trace": " >>> Call to main_solution\n ...... node = <Node object at 0x7f12ab34cd>\n"
             "    1 | def main_solution(a, b):\n <<< Return value from main_solution: 3\n",
}


def test_the_translation_prompt_has_question_input_code_and_trace_without_addresses():
    prompt = translation_prompt(TRACE_ROW)
    assert "Add two numbers.\nInput: a, b (int)." in prompt
    assert 'Given the input, {"a": 1, "b": 2}, predict the output' in prompt
    assert "def main_solution(a, b):\n    return a + b" in prompt
    assert "<Node object>" in prompt and "0x7f" not in prompt
    assert "Do not write code" in prompt and "never mention the trace" in prompt


def test_the_training_prompt_never_shows_the_trace():
    prompt = training_prompt(TRACE_ROW)
    assert "Call to main_solution" not in prompt and "Return value" not in prompt
    assert "step by step" in prompt and '{"a": 1, "b": 2}' in prompt


def test_a_program_without_description_gets_a_question_from_its_name():
    row = {**TRACE_ROW, "problem_description": "", "io_requirements": "", "funcname": "main_solution"}
    assert ("What does the function `def main_solution(a, b)` return when it is called with the "
            "given arguments?") in training_prompt(row)


def test_prompts_are_counted_in_tokens_and_rejected_before_the_gpu_when_too_long(tiny_model):
    preprocess = make_preprocess(LLMSettings(model=tiny_model, device="cpu", max_model_len=4096,
                                             max_tokens=100, min_new_tokens=16))
    request = {"kind": REQUEST, "payload": json.dumps(TRACE_ROW)}
    fits = preprocess(request)
    assert fits["__inference_error__"] == "" and len(fits["tokenized_prompt"]) > 50
    assert fits["sampling_params"]["max_tokens"] == 100
    assert fits["sampling_params"]["temperature"] == 0.6 and fits["sampling_params"]["top_k"] == 20

    tight = make_preprocess(LLMSettings(model=tiny_model, device="cpu", max_model_len=len(
        fits["tokenized_prompt"]) + 10, min_new_tokens=16))
    rejected = tight(request)
    assert rejected["__inference_error__"].startswith(PROMPT_REJECT + "prompt_too_long:")
    # rows that are not requests cross the engine untouched
    assert preprocess({"kind": "stats", "payload": "{}"})["__inference_error__"] == PASSTHROUGH


@pytest.mark.slow
def test_the_whole_job_on_the_real_vllm_engine_rejects_gibberish_with_reasons(tmp_path, ray_local,
                                                                              tiny_model):
    """trace -> vLLM (ray.data.llm, CPU) -> verify, in one run: a random-weight model never
    finishes thinking, not even when its answer goes back once for a revision (a second engine
    pool), and a prompt over max_model_len never reaches the engine."""
    long_loop = program("def main_solution(n):\n    total = 0\n    for i in range(n):\n"
                        "        total += i * i\n    return total\n",
                        [({"n": 60}, sum(i * i for i in range(60)))], description="sum of squares")
    short = program("def main_solution(a, b):\n    return a * b\n", [({"a": 6, "b": 7}, 42)],
                    description="multiply")
    source = write_jsonl(tmp_path / "in.jsonl", [long_loop, short])
    out = tmp_path / "out"
    code = cli.main(["run", "--input", str(source), "--output", str(out), "--actors", "1",
                     "--model", tiny_model, "--device", "cpu", "--dtype", "bfloat16",
                     "--enforce-eager", "--max-model-len", "1024", "--max-tokens", "24",
                     "--min-new-tokens", "16", "--llm-batch-size", "4",
                     "--tasks", "output,variable,input,rewrite", "--variable-questions", "2"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"], manifest["checks"]
    counts = manifest["counts"]
    assert counts["trace_filter"]["kept"] == 2
    # the loop's variable questions go to the engine too: the short ones fit its context
    assert manifest["tasks"]["output"] == {"items": 2, "examples": 0}
    variable_items = manifest["tasks"]["variable"]["items"]
    assert variable_items == 2 and manifest["tasks"]["variable"]["examples"] == 0
    assert counts["translate"]["seen"] == counts["make_tasks"]["kept"] == 2 + variable_items + 2 + 2
    assert counts["translate"]["reasons"]["prompt_too_long"] >= 1
    # gibberish: cut at the token limit inside its thinking, or, where the random model ended
    # before the limit with no thinking block, checked whole and found wanting
    gibberish = {"unfinished_thinking", "no_final_answer", "empty_answer", "wrong_answer",
                 "bad_input", "no_program", "bad_program"}
    # (a revision whose conversation no longer fits the context is a verify reject too)
    assert set(counts["verify"]["reasons"]) <= gibberish | {"prompt_too_long"}
    assert counts["verify"]["kept"] == 0
    answers = manifest["translation"]["answers"]
    assert sum(answers.values()) == manifest["translation"]["bill"]["requests"]  # every attempt
    variable_rejects = [r for r in read_rows(out / "rejects") if ":v" in r["id"]]
    assert len(variable_rejects) == variable_items
    assert {r["reason"] for r in variable_rejects} <= {"prompt_too_long"} | gibberish
    # input prediction: the prompt has no trace, so both fit; gibberish proposes no input
    assert manifest["tasks"]["input"] == {"items": 2, "examples": 0}
    input_rejects = {r["id"]: (r["stage"], r["reason"]) for r in read_rows(out / "rejects")
                     if r["id"].endswith(":i")}
    assert {stage for stage, _ in input_rejects.values()} == {"verify"}
    assert {reason for _, reason in input_rejects.values()} <= gibberish
    assert len(input_rejects) == 2
    # rewrites: no program in gibberish, so none is run, kept or written as a new program
    assert manifest["tasks"]["rewrite"] == {"items": 2, "examples": 0}
    assert {r["reason"] for r in read_rows(out / "rejects") if r["id"].endswith(":r")} <= gibberish
    assert manifest["written"]["rewrites"] == 0 and manifest["checks"]["rewrites_written_equal_kept"]
    assert manifest["translation"] == {**manifest["translation"], "translator": "llm",
                                       "model": tiny_model, "verified_fraction": 0.0}
    # each gibberish answer went back once: its one reject names both attempts
    verify_rejects = [r for r in read_rows(out / "rejects") if r["stage"] == "verify"]
    assert verify_rejects and all(r["detail"].startswith("attempt 1: ") and "; attempt 2: " in
                                  r["detail"] for r in verify_rejects), verify_rejects[:3]
    bill = manifest["translation"]["bill"]
    # (a revision whose conversation no longer fits the context is no request: it is said so)
    assert 0 < bill["requests_by_attempt"]["attempt_2"] <= len(verify_rejects)
    rejects = {(r["stage"], r["reason"]) for r in read_rows(out / "rejects")}
    assert ("translate", "prompt_too_long") in rejects and {"verify"} == {
        stage for stage, reason in rejects if reason in gibberish}
    assert len(read_rows(out / "traces")) == 2  # the traces are written whatever the translator says


@pytest.fixture(scope="module")
def rendered_run(tmp_path_factory, ray_local) -> Path:
    """The whole job on data/sample.jsonl with the LLM-free renderer."""
    out = tmp_path_factory.mktemp("rendered") / "out"
    assert cli.main(["run", "--input", str(ROOT / "data" / "sample.jsonl"), "--output", str(out),
                     "--actors", "2", "--timeout-s", "2"]) == 0
    return out


@pytest.mark.slow
def test_run_with_the_renderer_makes_training_data_llama_factory_and_datasets_can_load(rendered_run):
    out = rendered_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"]
    assert manifest["translation"]["translator"] == "render"
    kept = manifest["counts"]["trace_filter"]["kept"]
    assert manifest["written"] == {"traces": kept, "translations": kept, "training": kept,
                                   "rejects": manifest["written"]["rejects"]}

    lines = [json.loads(line) for f in sorted((out / "training" / "messages").glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    assert len(lines) == kept
    assert all([m["role"] for m in line["messages"]] == ["user", "assistant"] for line in lines)
    assert all(line["messages"][1]["content"].rstrip().splitlines()[-1].startswith("Final answer:")
               for line in lines)
    info = json.loads((out / "training" / "dataset_info.json").read_text())
    assert info["groundtrace"]["formatting"] == "sharegpt"
    assert (out / "training" / info["groundtrace"]["file_name"]).is_dir()

    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_dir=str(out / "training" / "parquet"), split="train")
    assert len(loaded) == kept and loaded[0]["messages"][0]["role"] == "user"


# A Qwen3-style chat template, as trainers render a training conversation: an assistant turn
# with a think block keeps it; one without gets an empty one (what the "answer" layout trains)
QWEN3_STYLE = (
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}"
    "{%- if '</think>' in m.content %}"
    "{%- set thought = m.content.split('</think>')[0].split('<think>')[-1].strip('\n') %}"
    "{%- set shown = m.content.split('</think>')[-1].lstrip('\n') %}"
    "{%- else %}{%- set thought = '' %}{%- set shown = m.content %}{%- endif %}"
    "{{- '<|im_start|>assistant\n<think>\n' + thought + '\n</think>\n\n' + shown + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{%- endif %}"
    "{%- endfor %}")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["answer", "think"])
def test_the_reasoning_lands_where_the_layout_says_when_a_trainer_renders_it(
        rendered_run, tmp_path, layout):
    import jinja2

    datasets = pytest.importorskip("datasets")
    out = tmp_path / layout
    assert cli.main(["build", "--input", str(rendered_run), "--output", str(out),
                     "--reasoning-in", layout]) == 0
    info = json.loads((out / "training" / "dataset_info.json").read_text())
    template = {"answer": "qwen3_nothink", "think": "qwen3"}[layout]
    assert info["groundtrace"]["groundtrace"]["llamafactory_template"] == template
    loaded = datasets.load_dataset("json", data_files=str(out / "training" / "messages" / "*.jsonl"),
                                   split="train")
    render = jinja2.Environment().from_string(QWEN3_STYLE)
    for example in loaded:
        reasoning = example["messages"][1]["content"]
        text = render.render(messages=example["messages"])
        thought = text.split("<|im_start|>assistant\n<think>\n", 1)[1].split("</think>")[0]
        shown = text.split("</think>\n\n", 1)[1]
        if layout == "think":  # the steps are thought, the final answer is what the model says
            assert "Line " in thought and shown.startswith("Final answer:"), text[-400:]
        else:  # the steps are the visible answer, after an empty think block
            assert thought.strip() == "" and shown.startswith(reasoning[:40])


@pytest.mark.slow
def test_translate_and_build_alone_on_an_earlier_run_give_the_same_examples(rendered_run, tmp_path):
    out = rendered_run
    kept = json.loads((out / "manifest.json").read_text())["counts"]["trace_filter"]["kept"]
    first = {r["id"]: r["messages"] for r in read_rows(out / "training" / "parquet")}

    again = tmp_path / "again"
    assert cli.main(["translate", "--input", str(out), "--output", str(again)]) == 0
    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["counts"]["read_traces"]["kept"] == kept and manifest["accounting_ok"]
    assert {r["id"]: r["messages"] for r in read_rows(again / "training" / "parquet")} == first

    rebuilt = tmp_path / "rebuilt"
    assert cli.main(["build", "--input", str(out), "--output", str(rebuilt)]) == 0
    manifest = json.loads((rebuilt / "manifest.json").read_text())
    assert manifest["counts"]["read_translations"]["kept"] == kept and manifest["accounting_ok"]
    assert {r["id"]: r["messages"] for r in read_rows(rebuilt / "training" / "parquet")} == first
    # never into the folder it reads from
    assert cli.main(["translate", "--input", str(out), "--output", str(out), "--overwrite"]) == 2


@pytest.mark.slow
def test_a_token_cap_for_the_trained_model_rejects_long_examples(rendered_run, tmp_path, tiny_model):
    out = tmp_path / "capped"
    code = cli.main(["build", "--input", str(rendered_run), "--output", str(out),
                     "--trained-tokenizer", tiny_model, "--max-training-tokens", "10"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"]
    build = manifest["counts"]["build"]
    assert build["seen"] > 0 and build["reasons"] == {"too_many_tokens": build["seen"]}
    assert manifest["written"]["training"] == 0


def test_a_gpu_engine_on_a_machine_without_gpus_stops_at_once_naming_the_cpu_backend(
        tmp_path, ray_local, tiny_model, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", "--input", str(ROOT / "data" / "sample.jsonl"), "--output", str(out),
                     "--model", tiny_model, "--progress-s", "0"])
    said = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(said) == 1 and "--device cpu" in said[0], said
    assert not (out / "_ledger" / "run.json").exists()  # the output was left as it was


def test_the_context_defaults_to_the_models_own_and_a_longer_one_is_refused(tiny_model, capsys):
    from jobs.config import TranslateConfig

    assert TranslateConfig(model=tiny_model).llm(0).max_model_len == 8192  # its config's
    assert TranslateConfig(model=tiny_model, max_model_len=2048).llm(0).max_model_len == 2048
    code = cli.main(["run", "--model", tiny_model, "--device", "cpu", "--max-model-len", "40960"])
    said = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(said) == 1 and "longer than" in said[0] and "8192" in said[0], said
