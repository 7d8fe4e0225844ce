"""Programs made up for tests and benchmarks that need many distinct ones: small loops of random
arithmetic (distinct code, so the screen keeps them and the sandbox runs them all), each with
inputs whose outputs the generator worked out by running its own code."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

OPS = ["+", "-", "*", "^", "|", "&"]
NAMES = ["acc", "total", "best", "count", "value", "step", "mark", "weight", "score", "left",
         "right", "seen", "carry", "span", "level", "delta", "prod", "rest", "tally", "peak"]


def program(rng: random.Random, ios: int = 2) -> dict:
    """A small program of random arithmetic over a loop: distinct code, known outputs."""
    a, b, c = rng.sample(NAMES, 3)
    lines = ["def main_solution(n, k):", f"    {a} = {rng.randint(0, 99)}",
             f"    {b} = {rng.randint(1, 99)}"]
    for _ in range(rng.randint(2, 4)):
        x, y = rng.choice([a, b, "i", "k"]), rng.choice([a, b, "i", "k"])
        lines.append(f"    {c} = ({x} {rng.choice(OPS)} {y}) % {rng.randint(7, 997)}")
        lines.append(f"    {rng.choice([a, b])} = {c} {rng.choice(OPS[:3])} {rng.randint(1, 50)}")
    body = ["    for i in range(n):", f"        {a} = ({a} {rng.choice(OPS[:3])} i * {b}) % "
            f"{rng.randint(101, 9973)}", f"    return [{a}, {b}, {c}]"]
    code = "\n".join(lines[:3] + body[:2] + ["        " + line.strip() for line in lines[3:]]
                     + body[2:]) + "\n"
    namespace: dict = {}
    exec(compile(code, "<generated>", "exec"), namespace)  # our own generated code
    pairs = []
    for _ in range(ios):
        args = {"n": rng.randint(2, 6), "k": rng.randint(1, 20)}
        pairs.append({"input": args, "output": namespace["main_solution"](**args)})
    return {"problem_description": f"generated program {rng.random():.12f}", "io_requirements": "",
            "refcode": code, "funcname": "main_solution", "ios": pairs}


def corpus(programs: int, seed: int = 0, ios: int = 2) -> list[str]:
    """``programs`` records as JSONL lines, the same for the same seed."""
    rng = random.Random(seed)
    return [json.dumps(program(rng, ios)) for _ in range(programs)]


# what a record of a mixed corpus is made to meet, and how often (mixed_corpus)
FATES = {"kept": 0.50, "mismatch": 0.08, "error": 0.08, "trace_limit": 0.08, "slow": 0.06,
         "randomness": 0.05, "syntax_error": 0.04, "too_large": 0.05, "unreadable": 0.03,
         "exception_in_trace": 0.03}


# a mix where every stage rejects a share of what it sees (tests/test_plan.py, bench/plan.py)
EVERY_STAGE = {"kept": 0.36, "mismatch": 0.08, "error": 0.08, "trace_limit": 0.07, "slow": 0.05,
               "randomness": 0.06, "syntax_error": 0.05, "too_large": 0.08, "unreadable": 0.08,
               "exception_in_trace": 0.09}


def fated(rng: random.Random, fate: str) -> str:
    """One JSONL line whose program meets ``fate`` in the job: kept, a reject at a given
    stage, or kept after computing for a while (slow: sandbox time of its own)."""
    if fate == "unreadable":
        return '{"refcode": "def main_solution(n):' + f" return {rng.randint(0, 9)}"  # cut off
    record = program(rng)
    code = record["refcode"]
    if fate == "mismatch":
        for pair in record["ios"]:
            pair["output"] = ["not", "this", rng.randint(0, 999)]
    elif fate == "error":
        code = code.replace("    return", f"    if k < {rng.randint(30, 90)}:\n"
                                          "        raise ValueError('no answer for this k')\n"
                                          "    return", 1)
    elif fate == "trace_limit":
        for pair in record["ios"]:  # hundreds of iterations: past the trace's line budget
            pair["input"]["n"] = rng.randint(400, 900)
        record["ios"] = _outputs(code, record["ios"])
    elif fate == "slow":  # a loop without lines of its own in the trace: a builtin's time
        code = code.replace("    return", f"    spin = sum(range({rng.randint(2, 6)} * 10 ** 6))"
                                          "\n    return", 1)
    elif fate == "randomness":
        code = "import random\n" + code.replace("    return", f"    random.seed({rng.randint(0, 9)})"
                                                             "\n    return", 1)
    elif fate == "syntax_error":
        code = code.replace("):", ")", 1)
    elif fate == "too_large":
        for pair in record["ios"]:
            pair["input"]["k"] = "x" * 5000  # a string longer than --max-str-chars
    elif fate == "exception_in_trace":  # an exception raised and caught on the way
        code = code.replace("    return", "    try:\n        int('x')\n    except ValueError:\n"
                                          "        pass\n    return", 1)
    record["refcode"] = code
    return json.dumps(record)


def _outputs(code: str, ios: list[dict]) -> list[dict]:
    namespace: dict = {}
    exec(compile(code, "<generated>", "exec"), namespace)  # our own generated code
    return [{"input": pair["input"], "output": namespace["main_solution"](**pair["input"])}
            for pair in ios]


def mixed_corpus(records: int, seed: int = 0, shares: dict[str, float] | None = None) -> list[str]:
    """``records`` JSONL lines of every fate in ``shares`` (FATES'), shuffled; the same for
    a seed."""
    rng = random.Random(seed)
    fates = [fate for fate, share in (shares or FATES).items() for _ in range(round(share * records))]
    fates = (fates + ["kept"] * records)[:records]
    rng.shuffle(fates)
    return [fated(rng, fate) for fate in fates]


def write_shapes(lines: list[str], folder: Path) -> dict[str, str]:
    """The same JSONL lines as one file, 40 files, 8 .jsonl.gz files and a Parquet file (ios
    as JSON text, as CodeI/O's Parquet has it; a cut-off line becomes a row the read stage
    rejects as well): shape -> input path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "one.jsonl").write_text("\n".join(lines) + "\n")
    for name in ("many", "gz"):
        (folder / name).mkdir()
    step = max(1, len(lines) // 40)
    for k in range(0, len(lines), step):
        (folder / "many" / f"part-{k:06d}.jsonl").write_text("\n".join(lines[k:k + step]) + "\n")
    for k in range(0, len(lines), step * 5):
        (folder / "gz" / f"part-{k:06d}.jsonl.gz").write_bytes(
            gzip.compress(("\n".join(lines[k:k + step * 5]) + "\n").encode()))
    rows = []
    for line in lines:
        try:
            record = json.loads(line)
            rows.append({**record, "ios": json.dumps(record["ios"])})
        except ValueError:
            rows.append({"refcode": None, "funcname": None, "ios": "[]"})
    pq.write_table(pa.Table.from_pylist(rows), folder / "rows.parquet", row_group_size=128)
    return {"one": str(folder / "one.jsonl"), "many": str(folder / "many"),
            "gz": str(folder / "gz"), "parquet": str(folder / "rows.parquet")}


# Two sources unlike each other (tests/test_plan.py, bench/plan.py --mixed): PyEdu-style
# problems of many pairs, few of which pass, beside CRUXEval-style calls of one pair that
# mostly do (--samples-per-problem 1 keeps at most one trace of a problem of nine pairs).
PROBLEM_FATES = {"kept": 0.40, "mismatch": 0.15, "error": 0.15, "trace_limit": 0.10,
                 "exception_in_trace": 0.10, "syntax_error": 0.05, "unreadable": 0.05}
CALL_FATES = {"kept": 0.85, "mismatch": 0.05, "error": 0.05, "trace_limit": 0.05}


def call_record(rng: random.Random, fate: str) -> str:
    """One call-format line (code, a Python argument list, the literal of the result)."""
    record = json.loads(fated(rng, fate))
    code = record["refcode"].replace("def main_solution(", "def f(", 1)
    pair = record["ios"][0]
    return json.dumps({"code": code, "input": f"{pair['input']['n']}, {pair['input']['k']!r}",
                       "output": repr(pair["output"])})


def problems(records: int, seed: int, ios: int, shares: dict[str, float]) -> list[str]:
    """PyEdu-style records of ``ios`` pairs each, fates in ``shares``."""
    rng = random.Random(seed)
    lines = []
    for fate in _fates(rng, records, shares):
        if fate == "unreadable":
            lines.append(fated(rng, fate))
            continue
        record = json.loads(fated(rng, fate))
        more = ios - len(record["ios"])
        if fate in ("kept", "exception_in_trace"):  # more inputs of the same code
            record["ios"] += _outputs(record["refcode"], [
                {"input": {"n": rng.randint(2, 6), "k": rng.randint(1, 20)}} for _ in range(more)])
        else:  # the same fate again
            record["ios"] += (record["ios"] * ios)[:more]
        lines.append(json.dumps(record))
    return lines


def calls(records: int, seed: int, shares: dict[str, float]) -> list[str]:
    rng = random.Random(seed)
    return [call_record(rng, fate) for fate in _fates(rng, records, shares)]


def _fates(rng: random.Random, records: int, shares: dict[str, float]) -> list[str]:
    fates = [fate for fate, share in shares.items() for _ in range(round(share * records))]
    fates = (fates + ["kept"] * records)[:records]
    rng.shuffle(fates)
    return fates
