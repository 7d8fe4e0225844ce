"""Raw filters: which programs and which input/output pairs are worth tracing.

Program level: the code parses, defines the function, and is deterministic (randomness and
clock reads found in the AST, not by substring). Pair level: a well-formed pair whose input is
a JSON object of keyword arguments, new (de-duplicated by canonical JSON), within the size
limits; then a seeded sample of at most ``ios_per_program`` pairs.
"""

from __future__ import annotations

import ast
import json
import random
import re
import sys
from dataclasses import dataclass
from typing import Any

from trace_workers.canonical import canonical_json
from trace_workers.records import (
    Program,
    ProgramWork,
    Run,
    call_argument_nodes,
    is_invalid,
    parse_call_arguments,
    parse_literal_output,
    run_id,
)
from trace_workers.stats import StageStats
from trace_workers.stream import reject

# Qualified names whose use makes a program's output depend on more than its input.
NONDETERMINISTIC_MODULES = ("random", "secrets", "uuid", "numpy.random", "torch.random")
NONDETERMINISTIC_CALLS = (
    "os.urandom", "os.getrandom", "random.SystemRandom",
    "time.time", "time.time_ns", "time.perf_counter", "time.perf_counter_ns",
    "time.monotonic", "time.monotonic_ns", "time.process_time", "time.process_time_ns",
    "time.localtime", "time.gmtime", "time.ctime", "time.asctime", "time.strftime",
    "datetime.datetime.now", "datetime.datetime.today", "datetime.datetime.utcnow",
    "datetime.date.today", "torch.rand", "torch.randn", "torch.randint", "torch.randperm",
)
# Libraries that only the "full" jail preloads (each makes every fork dearer).
HEAVY_MODULES = frozenset({"sympy", "networkx", "scipy", "pandas", "z3"})
# builtins that can import or run code the AST does not show
DYNAMIC_BUILTINS = frozenset({"__import__", "exec", "eval", "compile"})
MAX_SNOOP_DEPTH = 19  # snoop fails at depth >= 20


@dataclass
class RawFilterConfig:
    ios_per_program: int = 10
    seed: int = 0
    max_items: int = 20  # containers of this many items or more are too large
    max_str_chars: int = 100  # strings of this many characters or more are too large
    max_value_bytes: int = 1024  # any value whose canonical JSON has this many bytes or more
    max_code_bytes: int = 65_536
    input_format: str = "auto"  # pyedu, call, or auto (by the record's fields)


@dataclass
class ProgramFacts:
    """What the filters need to know of a program's AST, gathered in one walk (the filters run
    on every record, and each walk of a large program costs milliseconds)."""

    imported: set[str]  # module names and module.name of every import
    used: set[str]  # qualified dotted names used, import aliases resolved
    defs: int  # functions defined, at any depth
    dynamic: bool  # a relative or dynamic import, or exec/eval/compile


def program_facts(tree: ast.AST) -> ProgramFacts:
    aliases: dict[str, str] = {}
    imported: set[str] = set()
    dotted_names: list[str] = []
    defs, dynamic = 0, False
    for node in ast.walk(tree):
        kind = type(node)
        if kind is ast.Name or kind is ast.Attribute:
            dotted = _dotted(node)
            if dotted:
                dotted_names.append(dotted)
            if kind is ast.Name and node.id in DYNAMIC_BUILTINS:
                dynamic = True
            elif kind is ast.Attribute and node.attr == "import_module":
                dynamic = True
        elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
            defs += 1
        elif kind is ast.Import:
            for alias in node.names:
                imported.add(alias.name)
                aliases[(alias.asname or alias.name).split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif kind is ast.ImportFrom:
            if node.level:
                dynamic = True
            elif node.module:
                imported.add(node.module)
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full)
                    aliases[alias.asname or alias.name] = full
        elif kind is ast.Call and node.args and isinstance(node.args[0], ast.Constant):
            if (isinstance(node.func, ast.Name) and node.func.id == "__import__") or \
                    _dotted(node.func) == "importlib.import_module":
                imported.add(str(node.args[0].value))
    used: set[str] = set()
    for dotted in dotted_names:
        head, _, rest = dotted.partition(".")
        if head in aliases:
            used.add(f"{aliases[head]}.{rest}" if rest else aliases[head])
    return ProgramFacts(imported, used, defs, dynamic)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _matches(name: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


def find_randomness(tree: ast.AST, facts: ProgramFacts | None = None) -> str | None:
    """The first nondeterministic module or call the program uses, or None."""
    facts = facts or program_facts(tree)
    for name in sorted(facts.imported):
        hit = _matches(name, NONDETERMINISTIC_MODULES)
        if hit:
            return f"imports {hit}"
    for name in sorted(facts.used):
        hit = _matches(name, NONDETERMINISTIC_MODULES) or _matches(name, NONDETERMINISTIC_CALLS)
        if hit:
            return f"uses {hit}"
    return None


def count_defs(tree: ast.AST) -> int:
    return sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(tree))


def snoop_depth(tree: ast.AST, facts: ProgramFacts | None = None) -> int:
    """The reference method traces with depth = number of defs; snoop breaks at 20."""
    defs = facts.defs if facts is not None else count_defs(tree)
    return max(1, min(defs, MAX_SNOOP_DEPTH))


def defines_function(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
    return False


def jail_for(tree: ast.AST, facts: ProgramFacts | None = None) -> str:
    """Which of the trace actor's jails runs the program (``trace_workers.actor.JAILS``):
    "stdlib" when it can only reach the standard library (no other import, no relative or
    dynamic import, no exec/eval: the jail without numpy forks fastest), "full" when it
    imports one of the heavy libraries, else "numpy"."""
    facts = facts or program_facts(tree)
    tops = {name.split(".")[0] for name in facts.imported}
    if tops & HEAVY_MODULES:
        return "full"
    return "stdlib" if tops <= sys.stdlib_module_names and not facts.dynamic else "numpy"


def _size_bytes(value: Any) -> int:
    try:
        return len(canonical_json(value).encode())
    except (TypeError, ValueError):  # call format: sets, tuple keys, bytes...
        return len(repr(value).encode("utf-8", "surrogatepass"))


def size_violation(value: Any, cfg: RawFilterConfig) -> str | None:
    """Why an input is too large for a readable trace (the reference's limits), or None.
    Its size in bytes is measured once, at the top: a nested value's JSON (or repr) is part
    of its container's, so no nested value can pass a limit that the whole stays under."""
    if _size_bytes(value) >= cfg.max_value_bytes:
        return f"a value of {cfg.max_value_bytes} bytes or more"
    return _shape_violation(value, cfg)


def _shape_violation(value: Any, cfg: RawFilterConfig) -> str | None:
    """The item and character limits, everywhere inside ``value``."""
    if isinstance(value, dict):
        if len(value) >= cfg.max_items:
            return f"a dict of {len(value)} items"
        for key, item in value.items():
            found = _shape_violation(key, cfg) or _shape_violation(item, cfg)
            if found:
                return found
    elif isinstance(value, (list, tuple, set, frozenset)):
        if len(value) >= cfg.max_items:
            return f"a list of {len(value)} items"
        for item in value:
            found = _shape_violation(item, cfg)
            if found:
                return found
    elif isinstance(value, str) and len(value) >= cfg.max_str_chars:
        return f"a string of {len(value)} characters"
    return None


_EXCEPTION_OUTPUT = re.compile(r"^\s*(Traceback|[A-Za-z_.]*(Error|Exception)\b)")


def _call_pair(arguments: str, output: str, cfg: RawFilterConfig,
               program: ast.Module) -> str | tuple[str, str]:
    """A call-format pair: its de-duplication key, or (reason, detail) to reject it.
    Arguments that are expressions (``dict(a=1)``, ``'ab' * 3``, a name the program defines)
    are evaluated in the sandbox, in the program's namespace, never here: only their syntax
    and what they may call are checked, and their size is known only once they run."""
    if _EXCEPTION_OUTPUT.match(output):
        return "expected_exception", f"the expected output is an exception: {output[:120]}"
    try:
        parse_literal_output(output)
    except ValueError as exc:
        return "bad_expected_output", f"not a Python literal: {exc}"[:300]
    try:
        args, kwargs = parse_call_arguments(arguments)
    except ValueError as exc:
        try:
            call = call_argument_nodes(arguments)
        except ValueError:
            return "bad_arguments", str(exc)[:300]
        unsafe = _unsafe_expression(call, program)
        if unsafe:
            return "bad_arguments", unsafe
        return ast.dump(call)  # an expression: the same text (less spacing) is the same input
    too_large = size_violation(args, cfg) or size_violation(kwargs, cfg)
    if too_large:
        return "input_too_large", too_large
    return repr((args, sorted(kwargs.items())))


def _unsafe_expression(call: ast.Call, program: ast.Module) -> str | None:
    """Why argument expressions may not run (they could make the output depend on more than
    the input, or run code the program does not show), or None. The program's own imports
    name what they reach (it passed the randomness filter: a hit is the arguments')."""
    with_call = ast.Module(body=[*program.body, ast.Expr(call)], type_ignores=[])
    random_use = find_randomness(with_call) or next(
        (f"uses {name}" for node in ast.walk(call) if (name := _dotted(node))
         and (_matches(name, NONDETERMINISTIC_MODULES) or _matches(name, NONDETERMINISTIC_CALLS))),
        None)
    if random_use:
        return f"an argument expression {random_use}"
    for node in ast.walk(call):
        if isinstance(node, ast.Name) and node.id in DYNAMIC_BUILTINS:
            return f"an argument expression calls {node.id}"
        if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            return f"an argument expression reaches {node.attr}"
    return None


def filter_program(program: Program, cfg: RawFilterConfig, stats: StageStats,
                   tree: ast.Module | None = None) -> list[dict]:
    """Program and pair filters for one parsed program: its work row and its rejects
    (``tree``: the program's AST, when the caller has parsed it already)."""
    pid = program.problem_id
    stats.see("program_filter")

    def reject_program(reason: str, detail: str) -> list[dict]:
        return [reject(stats, "program_filter", reason, pid, pid, detail)]

    if len(program.refcode.encode("utf-8", "surrogatepass")) > cfg.max_code_bytes:
        return reject_program("code_too_large", f"more than {cfg.max_code_bytes} bytes")
    try:
        tree = tree or ast.parse(program.refcode)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # nested too deeply
        return reject_program("syntax_error", f"{type(exc).__name__}: {exc}"[:300])
    if not program.pairs:
        return reject_program("no_pairs", "the record has no input/output pairs")
    facts = program_facts(tree)
    random_use = find_randomness(tree, facts)
    if random_use:
        return reject_program("uses_randomness", random_use)
    if not defines_function(tree, program.funcname):
        return reject_program("function_not_found", f"no top-level {program.funcname!r}")
    stats.keep("program_filter")

    rows: list[dict] = []
    candidates: list[tuple[int, str, str]] = []
    seen_inputs: set[str] = set()
    stats.see("pair_filter", len(program.pairs))

    def reject_pair(index: int, reason: str, detail: str) -> None:
        rows.append(reject(stats, "pair_filter", reason, run_id(pid, index), pid, detail))

    for pair in program.pairs:
        if program.call_format:
            checked = _call_pair(pair.input, pair.output, cfg, tree)
            if isinstance(checked, tuple):
                reject_pair(pair.index, *checked)
            elif checked in seen_inputs:
                reject_pair(pair.index, "duplicate_input", "an earlier pair has the same input")
            else:
                seen_inputs.add(checked)
                candidates.append((pair.index, pair.input.strip(), pair.output.strip()))
            continue
        if is_invalid(pair.input):
            reject_pair(pair.index, "invalid_pair", "not an object with input and output")
            continue
        if not isinstance(pair.input, dict):
            reject_pair(pair.index, "input_not_object",
                        f"input is {type(pair.input).__name__}, not keyword arguments")
            continue
        key = canonical_json(pair.input)
        if key in seen_inputs:
            reject_pair(pair.index, "duplicate_input", "an earlier pair has the same input")
            continue
        seen_inputs.add(key)
        too_large = size_violation(pair.input, cfg)
        if too_large:
            reject_pair(pair.index, "input_too_large", too_large)
            continue
        candidates.append((pair.index, json.dumps(pair.input, ensure_ascii=False),
                           canonical_json(pair.output)))

    # Seeded per program, independent of where the program sits in the input.
    rng = random.Random(f"{cfg.seed}:{pid}")
    rng.shuffle(candidates)
    chosen = candidates[: cfg.ios_per_program] if cfg.ios_per_program > 0 else candidates
    for index, _, _ in candidates[len(chosen):]:
        reject_pair(index, "over_ios_per_program", f"more than {cfg.ios_per_program} pairs")
    if not chosen:
        return rows
    stats.keep("pair_filter", len(chosen))
    work = ProgramWork(
        problem_id=pid, problem_description=program.problem_description,
        io_requirements=program.io_requirements, refcode=program.refcode,
        funcname=program.funcname, depth=snoop_depth(tree, facts), jail=jail_for(tree, facts),
        runs=[Run(run_id(pid, index), inp, out) for index, inp, out in chosen],
        call_format=program.call_format,
    )
    rows.append(work.row())
    return rows
