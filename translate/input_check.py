"""The input task's check: a model's proposed input, run in the sandbox on the trace stage's
machinery, is kept only when the program returns the output the model was shown (any such
input counts, not only the original one).

A ``map_batches`` actor after the LLM stage: ``check`` rows are run and become a translation
and a training example, or a ``verify`` reject that says why (``wrong_input``: another output;
``input_failed``: the run did not return, with its status); every other row passes through.
"""

from __future__ import annotations

import json

import pyarrow as pa

from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.records import Reject, in_block, stream_rows, stream_table
from trace_workers.stats import BlockStats
from translate.answer import Verdict
from translate.export import BuildSettings
from translate.stage import CHECK, accepted


class InputCheckActor:
    def __init__(self, cfg: TraceStageConfig, build_cfg: BuildSettings):
        self.tracer = Tracer(cfg)
        self.build_cfg = build_cfg

    def check(self, payload: str, stats) -> list[dict]:
        check = json.loads(payload)
        item = check["item"]
        status, reason, detail = self.tracer.check(
            item["refcode"], item["funcname"], check["proposed"], item["returned"],
            call_format=item.get("value_format") == "python")
        stats.note("input_checks", status)
        if status != "ok":
            reason = "wrong_input" if status == "mismatch" else "input_failed"
            detail = f"input {check['proposed'][:200]}: {status}: {detail}"[:400]
            stats.reject("verify", reason)
            return [Reject(item["id"], item["problem_id"], "verify", reason, detail).row()]
        stats.keep("verify")
        verdict = Verdict(True, answer_text=check["answer_text"], final_answer=check["proposed"])
        return accepted(item, check["generation"], verdict, check["translator"], item["returned"],
                        self.build_cfg, stats)

    def __call__(self, batch: pa.Table) -> pa.Table:
        stats = BlockStats()
        out: list[dict] = []
        for kind, payload, block in stream_rows(batch):
            if kind == CHECK:
                out += in_block(self.check(payload, stats.of(block)), block)
            else:
                out.append({"kind": kind, "payload": payload, "block": block})
        return stream_table(out + stats.rows())

    def __del__(self) -> None:
        tracer = getattr(self, "tracer", None)
        if tracer is not None:
            tracer.close()
