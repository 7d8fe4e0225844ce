"""The checks that run a model's proposal in the sandbox, on the trace stage's machinery.

- input task: the proposed input is kept only when the program returns the output the model
  was shown (any such input counts, not only the original one): else ``wrong_input`` (another
  output) or ``input_failed`` (the run did not return; its status in the detail);
- rewrite task: the proposed program runs on every pair chosen for the original and is kept
  only when each returns the expected output: else ``rewrite_differs`` (the first pair that
  differs) or ``rewrite_failed``. A kept rewrite also becomes a new PyEdu program (a
  ``rewrite`` row, written to OUT/rewrites/) with its origin, ready for another run.

A ``map_batches`` actor after the LLM stage: ``check`` rows become a translation and a
training example, or a ``verify`` reject that says why; every other row passes through.
"""

from __future__ import annotations

import json

import pyarrow as pa

from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.records import problem_id_for
from trace_workers.stats import StageStats
from trace_workers.stream import CHECK, REWRITE, map_stream, reject, row
from translate.answer import Verdict
from translate.export import BuildSettings
from translate.stage import accepted
from translate.tasks import is_rewrite


class CheckActor:
    def __init__(self, cfg: TraceStageConfig, build_cfg: BuildSettings):
        self.tracer = Tracer(cfg)
        self.build_cfg = build_cfg

    def _input(self, item: dict, proposed: str) -> tuple[str, str] | None:
        """None when the proposed input gives the output; else (reason, detail)."""
        status, _, detail = self.tracer.check(
            item["refcode"], item["funcname"], proposed, item["returned"],
            call_format=item.get("value_format") == "python")
        if status == "ok":
            return None
        reason = "wrong_input" if status == "mismatch" else "input_failed"
        return reason, f"input {proposed[:200]}: {status}: {detail}"[:400]

    def _rewrite(self, item: dict, code: str) -> tuple[str, str] | None:
        """None when the rewrite returns every expected output; else (reason, detail)."""
        pairs = json.loads(item["program_pairs"])
        for number, (input_text, expected) in enumerate(pairs):
            status, _, detail = self.tracer.check(code, item["funcname"], input_text, expected)
            if status != "ok":
                reason = "rewrite_differs" if status == "mismatch" else "rewrite_failed"
                return reason, (f"pair {number + 1} of {len(pairs)}, input {input_text[:150]}: "
                                f"{status}: {detail}")[:400]
        return None

    def check(self, payload: str, stats: StageStats, _: int = 0) -> list[dict]:
        check = json.loads(payload)
        item, proposed = check["item"], check["proposed"]
        failed = self._rewrite(item, proposed) if is_rewrite(item) else self._input(item, proposed)
        stats.note("sandbox_checks", f"{item['task']}:{'failed' if failed else 'ok'}")
        if failed:
            return [reject(stats, "verify", failed[0], item["id"], item["problem_id"], failed[1])]
        stats.keep("verify")
        verdict = Verdict(True, answer_text=check["answer_text"], final_answer=proposed)
        rows = accepted(item, check["generation"], verdict, check["translator"], item["returned"],
                        self.build_cfg, stats)
        if is_rewrite(item):
            stats.note("rewrites", "kept")
            rows.append(row(REWRITE, rewrite_program(item, proposed)))
        return rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        return map_stream(batch, self.check, kinds=(CHECK,))

    def __del__(self) -> None:
        tracer = getattr(self, "tracer", None)
        if tracer is not None:
            tracer.close()


def rewrite_program(item: dict, code: str) -> dict:
    """A kept rewrite as a PyEdu record (ios as JSON text), with the run it came from."""
    ios = [{"input": json.loads(i), "output": json.loads(o)}
           for i, o in json.loads(item["program_pairs"])]
    record = {"problem_description": item.get("problem_description") or "",
              "io_requirements": item.get("io_requirements") or "", "refcode": code,
              "funcname": item["funcname"], "ios": json.dumps(ios, ensure_ascii=False)}
    return {**record, "problem_id": problem_id_for(record), "origin_id": item["id"],
            "origin_problem_id": item["problem_id"]}
