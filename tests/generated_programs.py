"""Programs made up for tests and benchmarks that need many distinct ones: small loops of random
arithmetic (distinct code, so the screen keeps them and the sandbox runs them all), each with
inputs whose outputs the generator worked out by running its own code."""

from __future__ import annotations

import json
import random

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
