"""The plan's figures from what the sample measured (jobs/plan/estimate.py): GPU hours, the wall
clock on a given cluster and the advice, the examples expected, the table; no sandbox."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import jobs.plan.estimate as plan_mod
from jobs.config import JobConfig
from jobs.plan.estimate import Measured, build_plan
from jobs.plan.sample import EXACT, Sample, SampledRecord, Stratum
from jobs.plan.view import plan_lines

RECORDS = 1000  # the input the sample stands for: ten sampled records, each 1/100 of it


def _plan(cfg: JobConfig, *, actor_s: float = 1.0, items: int = 1) -> dict:
    records = [SampledRecord(0, i, f"in.jsonl:{i}", "{}", "jsonl", f"0#{i}", True)
               for i in range(10)]
    figures = [Counter({"seen:read": 1, "kept:read": 1, "kept:pair_filter": 1, "traced_pairs": 1,
                        "kept:trace_filter": 1, "s:actor": actor_s, "s:sandbox_s": actor_s / 2,
                        "items": items, "prompt_tokens": 1000 * items,
                        "render_tokens": 300 * items, "max_output_tokens": 4000 * items,
                        "examples": items, "runs": 2}) for _ in records]
    strata = {"jsonl": Stratum("jsonl", EXACT, files=1, bytes=10**6, records=RECORDS,
                               fraction=0.01, screen_fraction=0.01)}
    sample = Sample(records, strata, 0.01, 0.01, seed=0)
    return build_plan(cfg, "run", ["in.jsonl"], sample,
                      Measured(figures, "characters / 4", None, 2), wall_s=1.0)


def _llm(revisions: int = 0, **plan) -> JobConfig:
    cfg = JobConfig()
    cfg.translate.model, cfg.translate.translator = "some/model", "llm"
    cfg.translate.revisions = revisions
    for key, value in plan.items():
        setattr(cfg.plan, key, value)
    return cfg


def test_the_renderer_plan_scales_every_figure_and_needs_no_gpu():
    cfg = JobConfig()
    cfg.plan.cpus = 12
    plan = _plan(cfg)
    assert plan["records"]["estimate"] == RECORDS
    assert plan["funnel"]["trace_filter"]["kept"]["estimate"] == RECORDS
    assert plan["trace"]["actor_core_s"]["estimate"] == RECORDS
    assert plan["trace"]["core_hours"]["estimate"] == pytest.approx(RECORDS / 3600, rel=1e-3)
    assert plan["examples"]["estimate"] == RECORDS and plan["examples"]["pass_rate"] == 1.0
    clock = plan["wall_clock"]
    assert clock["gpus"] == 0 and clock["trace_actors"] == 10 and clock["bound_by"] == "cpu"
    assert clock["total_s"]["estimate"] == pytest.approx(RECORDS / 10, rel=1e-3)
    json.dumps(plan)  # one JSON document


def test_gpu_hours_come_from_the_expected_output_and_the_gpus_speed():
    plan = _plan(_llm(gpu_tokens_per_s=500.0, expect_output_tokens=2000, gpus=4, cpus=34))
    tr = plan["translation"]
    assert tr["requests"]["estimate"] == RECORDS
    assert tr["output_tokens"]["expected"]["estimate"] == 2000 * RECORDS
    assert tr["gpu_hours"]["estimate"] == pytest.approx(2000 * RECORDS / 500 / 3600, rel=1e-3)
    clock = plan["wall_clock"]
    assert clock["gpu_s"]["estimate"] == pytest.approx(2000 * RECORDS / 500 / 4, rel=1e-3)
    assert clock["bound_by"] == "gpu" and "wait for the GPUs" in clock["advice"]
    assert plan["examples"]["estimate"] is None and "--expect-pass-rate" in plan["examples"]["pass_rate_from"]


def test_revision_requests_and_their_tokens_are_counted_from_the_first_pass_rate():
    """One revision at a first-attempt pass rate of 0.6: 1.4 requests an item, and 0.84 of the
    items kept (each attempt assumed to pass as often); without a pass rate, 1 to 2 requests."""
    plan = _plan(_llm(revisions=1, gpu_tokens_per_s=500.0, expect_output_tokens=2000, gpus=4,
                      expect_pass_rate=0.6))
    tr = plan["translation"]
    assert tr["items"]["estimate"] == RECORDS
    assert tr["requests"] == {"estimate": 1.4 * RECORDS, "low": RECORDS, "high": 2 * RECORDS}
    assert tr["revision_requests"]["estimate"] == pytest.approx(0.4 * RECORDS)
    assert tr["output_tokens"]["expected"]["estimate"] == pytest.approx(1.4 * 2000 * RECORDS)
    assert tr["gpu_hours"]["estimate"] == pytest.approx(1.4 * 2000 * RECORDS / 500 / 3600, rel=1e-3)
    assert plan["examples"]["estimate"] == pytest.approx(0.84 * RECORDS)
    assert "400 (0-1,000) of them revisions" in "\n".join(plan_lines(plan))
    unknown = _plan(_llm(revisions=1, gpu_tokens_per_s=500.0, expect_output_tokens=2000, gpus=4))
    assert unknown["translation"]["requests"] == {"estimate": None, "low": RECORDS,
                                                  "high": 2 * RECORDS}
    assert unknown["translation"]["gpu_hours"]["estimate"] is None


def test_without_an_expected_length_the_gpu_hours_are_a_range_between_the_bounds():
    plan = _plan(_llm(gpu_tokens_per_s=1000.0, gpus=1, expect_pass_rate=0.5))
    hours = plan["translation"]["gpu_hours"]
    assert hours["estimate"] is None
    assert hours["low"] == pytest.approx(300 * RECORDS / 1000 / 3600, rel=1e-2)
    assert hours["high"] == pytest.approx(4000 * RECORDS / 1000 / 3600, rel=1e-2)
    assert plan["examples"]["estimate"] == RECORDS / 2


def test_gpus_that_would_wait_for_the_traces_say_how_many_actors_keep_them_busy():
    plan = _plan(_llm(gpu_tokens_per_s=100000.0, expect_output_tokens=100, gpus=8, cpus=6),
                 actor_s=50.0)
    clock = plan["wall_clock"]
    assert clock["bound_by"] == "cpu" and "GPUs would wait for the traces" in clock["advice"]


def test_the_gpu_figure_is_read_from_the_bench_record(tmp_path, monkeypatch):
    record = tmp_path / "translate_gpu.json"
    record.write_text(json.dumps({"pipeline": {"tok_s": 1500.0, "marginal_tok_s": 1800.0},
                                  "preset": "qwen3-8b", "gpu": "NVIDIA H100", "date": "2026-12-01"}))
    monkeypatch.setattr(plan_mod, "GPU_BENCH_RECORD", record)
    plan = _plan(_llm(expect_output_tokens=1000))
    assert plan["translation"]["gpu_tokens_per_s"] == 1800.0
    assert "qwen3-8b on NVIDIA H100" in plan["translation"]["gpu_tokens_per_s_from"]
    monkeypatch.setattr(plan_mod, "GPU_BENCH_RECORD", tmp_path / "none.json")
    plan = _plan(_llm(expect_output_tokens=1000))
    assert plan["translation"]["gpu_hours"] is None
    assert "--gpu-tokens-per-s" in plan["wall_clock"]["advice"]


def test_the_table_shows_the_funnel_the_hours_and_the_notes():
    lines = "\n".join(plan_lines(_plan(_llm(gpu_tokens_per_s=500.0, expect_output_tokens=2000,
                                            gpus=4))))
    for part in ("trace_filter", "prompt tokens (characters / 4)", "GPU-hours", "wall clock on",
                 "advice:", "note: duplicates across the corpus are undercounted"):
        assert part in lines


def test_a_bad_plan_setting_is_refused():
    for key, value in (("sample", 0), ("sample_fraction", 0.0), ("sample_fraction", 2.0),
                       ("expect_pass_rate", 1.5), ("gpus", -1), ("cpus", 0)):
        cfg = JobConfig()
        setattr(cfg.plan, key, value)
        with pytest.raises(ValueError):
            cfg.validate()


def test_a_plan_needs_neither_the_model_nor_its_config(tmp_path):
    cfg = _llm()
    cfg.translate.model = str(tmp_path / "not-here")  # as a model id with no local copy
    with pytest.raises(ValueError):
        cfg.validate()  # a run reads the model's context before it starts
    cfg.validate(engine=False)
    plan = _plan(cfg)
    assert "pass --max-model-len" in " ".join(plan["notes"])
