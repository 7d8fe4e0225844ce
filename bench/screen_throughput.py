"""The screen's speed (exact and near duplicates, benchmark contamination) at corpus scale.

    .venv/bin/python bench/screen_throughput.py [--dev PATH] [--copies 10] [--whole]

The corpus is the dev set ``--copies`` times over, each copy distinct content: its description
names the copy, and (``--distinct``, the default) its local variables are renamed (``total`` ->
``total_c3``), so that most copies are not near copies either and the whole run traces them
all, as a corpus of distinct programs; with ``--near-copies`` the copies differ only by a
comment, and the near-duplicate stage must find every later one. ``--benchmark-items N`` adds a
decontamination index of N of the dev set's own programs, so that every copy of those is a
benchmark hit.

It prints, for the screen alone (Ray, as the job runs it: fingerprints, the shuffle, the
resolve task): wall seconds, records per core-second (records / (wall x cores)), what it
rejected, and the driver's peak RSS at 1 copy and at ``--copies`` (the driver holds refs and
counts, not records: it should not grow). ``--whole`` also runs ``groundtrace trace`` on the
corpus and prints the screen's share of that run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEV = ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"


def renamed_locals(code: str, suffix: str) -> str:
    """``code`` with every name it assigns (less arguments, functions, classes and imports)
    renamed: the same program, other tokens."""
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return code
    kept = {a.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
            for a in node.args + node.kwonlyargs + node.posonlyargs}
    kept |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    kept |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
             if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                and isinstance(n.ctx, ast.Store)} - kept
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in assigned:
            node.id += suffix
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [name + suffix if name in assigned else name for name in node.names]
    return ast.unparse(tree)


def make_corpus(dev: Path, copies: int, folder: Path, benchmark_items: int,
                distinct: bool = True, files: int = 1) -> tuple[Path, Path | None]:
    """The corpus (one file, or a folder of ``files`` files, records dealt out in turn)."""
    records = [json.loads(line) for line in dev.read_text().splitlines() if line.strip()]
    corpus = folder / f"dev_x{copies}.jsonl"
    lines: list[str] = []
    for copy in range(copies):
        for record in records:
            if copy:
                code = (renamed_locals(record["refcode"], f"_c{copy}") if distinct
                        else f"# copy {copy}\n{record['refcode']}")
                record = {**record, "problem_description": f"{record['problem_description']} "
                          f"(copy {copy})", "refcode": code}
            lines.append(json.dumps(record) + "\n")
    if files <= 1:
        corpus.write_text("".join(lines))
    else:
        corpus = folder / f"dev_x{copies}_in_{files}"
        corpus.mkdir()
        for index in range(files):
            (corpus / f"part-{index:03d}.jsonl").write_text("".join(lines[index::files]))
    bench = None
    if benchmark_items:
        bench = folder / "benchmark.jsonl"
        step = max(1, len(records) // benchmark_items)
        bench.write_text("".join(json.dumps({"id": f"item-{i}", "code": r["refcode"]}) + "\n"
                                 for i, r in enumerate(records[::step][:benchmark_items])))
    return corpus, bench


def screen_once(corpus: Path, bench: Path | None, cores: int) -> dict:
    """The screen alone, in a fresh process with its own local Ray (driver RSS measured there)."""
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
import ray
ray.init(num_cpus={cores}, include_dashboard=False, configure_logging=False, log_to_driver=False)
import ray.data
ray.data.DataContext.get_current().enable_progress_bars = False
from jobs.config import ScreenConfig
from jobs.screen.stage import run_screen
from jobs.sources import list_inputs
from trace_workers.raw_filter import RawFilterConfig
settings = ScreenConfig(decontaminate={[str(bench)] if bench else []}).settings(RawFilterConfig())
import tempfile
out = tempfile.mkdtemp()
started = time.time()
done = run_screen(settings, list_inputs({str(corpus)!r}), out, 16)
wall = time.time() - started
print(json.dumps({{"wall_s": wall, "rejected": done["rejected"],
                  "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def whole_run(corpus: Path, bench: Path | None, out: Path) -> dict:
    argv = [str(ROOT / ".venv" / "bin" / "groundtrace"), "trace", "--input", str(corpus),
            "--output", str(out), "--overwrite", "--progress-s", "0"]
    if bench:
        argv += ["--decontaminate", str(bench)]
    started = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - started
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall_s": wall, "job_wall_s": manifest["wall_s"], "screen_s": manifest["screen"]["wall_s"],
            "counts": {stage: c["kept"] for stage, c in manifest["counts"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--benchmark-items", type=int, default=50)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--whole", action="store_true", help="also run the trace job on the corpus")
    parser.add_argument("--files", type=int, default=1,
                        help="deal the corpus out over this many files (read tasks run one a file)")
    parser.add_argument("--near-copies", action="store_true",
                        help="copies differ by a comment only (every later copy a near copy)")
    args = parser.parse_args()
    if not args.dev.exists():
        sys.exit(f"no dev set at {args.dev}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one, bench = make_corpus(args.dev, 1, folder, args.benchmark_items)
        many, _ = make_corpus(args.dev, args.copies, folder, 0, distinct=not args.near_copies,
                              files=args.files)
        records = len(Path(args.dev).read_text().splitlines()) * args.copies
        small = screen_once(one, bench, args.cores)
        large = screen_once(many, bench, args.cores)
        print(f"screen, dev x1 ({records // args.copies} records): {small['wall_s']:.1f} s, "
              f"driver peak RSS {small['driver_rss_mb']:.0f} MB, rejected {small['rejected']}")
        print(f"screen, dev x{args.copies} ({records} records): {large['wall_s']:.1f} s, "
              f"{records / (large['wall_s'] * args.cores):.0f} records per core-second "
              f"({args.cores} cores), driver peak RSS {large['driver_rss_mb']:.0f} MB, "
              f"rejected {large['rejected']}")
        if args.whole:
            run = whole_run(many, bench, folder / "out")
            print(f"whole trace job on dev x{args.copies}: {run['job_wall_s']:.1f} s, of which the "
                  f"screen {run['screen_s']:.1f} s ({100 * run['screen_s'] / run['job_wall_s']:.1f}%); "
                  f"kept per stage {run['counts']}")
    print(f"(peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
