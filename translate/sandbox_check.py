"""The stage that runs a model's proposal in the sandbox, on the trace stage's machinery: the
tasks whose answer is a proposal (``runs_proposal``: input, rewrite) say how to run it and
what a failure is called (``run_proposal``), and any rows of their own (``output_rows``: a
kept rewrite is a new PyEdu program, written to OUT/rewrites/).

A ``map_batches`` actor after the LLM stage: ``check`` rows become a translation and a
training example, or a ``verify`` reject that says why; every other row passes through.
"""

from __future__ import annotations

import json

import pyarrow as pa

from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.stats import StageStats
from trace_workers.stream import CHECK, map_stream, reject
from translate.answer import Verdict
from translate.export import BuildSettings
from translate.stage import accepted
from translate.tasks import task_of


class CheckActor:
    def __init__(self, cfg: TraceStageConfig, build_cfg: BuildSettings):
        self.tracer = Tracer(cfg)
        self.build_cfg = build_cfg

    def check(self, payload: str, stats: StageStats, _: int = 0) -> list[dict]:
        check = json.loads(payload)
        item, proposed = check["item"], check["proposed"]
        task = task_of(item)
        failed = task.run_proposal(self.tracer, item, proposed)
        stats.note("sandbox_checks", f"{item['task']}:{'failed' if failed else 'ok'}")
        if failed:
            return [reject(stats, "verify", failed[0], item["id"], item["problem_id"], failed[1])]
        stats.keep("verify")
        verdict = Verdict(True, answer_text=check["answer_text"], final_answer=proposed)
        rows = accepted(item, check["generation"], verdict, check["translator"], item["returned"],
                        self.build_cfg, stats)
        extra = task.output_rows(item, proposed)
        if extra:
            stats.note("rewrites", "kept")  # (the one task with rows of its own so far)
        return rows + extra

    def __call__(self, batch: pa.Table) -> pa.Table:
        return map_stream(batch, self.check, kinds=(CHECK,))

    def __del__(self) -> None:
        tracer = getattr(self, "tracer", None)
        if tracer is not None:
            tracer.close()

