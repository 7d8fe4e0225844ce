"""``groundtrace``: the command line."""

from __future__ import annotations

import argparse
import sys

from jobs import config as config_mod

DESCRIPTION = """\
groundtrace turns Python programs with known inputs into execution-grounded training data.

  groundtrace run --input IN --output OUT     the whole job: trace, translate, verify, build
  groundtrace trace --input IN --output OUT   trace every program in a bubblewrap sandbox
                                              under snoop; keep runs whose result matches
  groundtrace translate --input RUN --output OUT
                                              translate an earlier run's traces (RUN or
                                              RUN/traces) into verified training data
  groundtrace build --input RUN --output OUT  training data again from RUN/translations
  groundtrace report OUT                      rebuild OUT/report.html from OUT

The translator is an LLM on vLLM when --model is given, else the LLM-free renderer.
Output: OUT/traces/ (kept runs), OUT/translations/ (verified reasoning), OUT/training/
(LLaMA-Factory messages JSONL, Parquet, dataset_info.json), OUT/rejects/ (every other row,
with its stage and reason), OUT/manifest.json (config, versions, counts per stage and reason),
OUT/report.html (funnel, reject reasons, length histograms, throughput, samples).
A killed run started again with the same command goes on where it stopped.
Before tracing, records that repeat an earlier one, near copies of an earlier program and
programs that share code with a benchmark (--decontaminate FILE) are rejected.
Settings come from --config FILE (YAML/TOML, sections [trace] [screen] [translate] [build]
[ray]) and
the flags of each command (groundtrace COMMAND --help).
"""

COMMANDS = {
    "run": ("trace, translate, verify and build in one streaming job",
            "Trace PyEdu programs in the sandbox, translate the kept traces into reasoning "
            "(vLLM with --model, else the LLM-free renderer), keep reasoning that reaches the "
            "executed result, and write training data.",
            ("trace", "screen", "translate", "build", "ray")),
    "trace": ("trace PyEdu programs in the sandbox (the trace stage)",
              "Read PyEdu records, filter them, trace each chosen input in the sandbox "
              "and write kept traces, rejects and a manifest.", ("trace", "screen", "ray")),
    "translate": ("translate the traces of an earlier run into training data",
                  "Read kept traces (an earlier run's output folder or its traces/), translate, "
                  "verify and build training data.", ("translate", "build", "ray")),
    "build": ("rebuild training data from an earlier run's translations",
              "Read verified translations (an earlier run's output folder or its translations/) and "
              "write the training data again, e.g. with a token cap for another model.",
              ("build", "ray")),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groundtrace", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (short, long, sections) in COMMANDS.items():
        command = commands.add_parser(name, help=short, description=long)
        config_mod.add_flags(command, sections)
    report = commands.add_parser(
        "report", help="rebuild OUT/report.html", description="Rebuild the run report "
        "(OUT/report.html) from a finished run's output folder, local or s3:// gs://.")
    report.add_argument("output", metavar="OUT", help="a finished run's output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        return _report(args.output)
    try:
        cfg = config_mod.from_args(args)
        cfg.validate()
    except (ValueError, OSError) as exc:
        print(f"groundtrace: bad configuration: {exc}", file=sys.stderr)
        return 2
    from jobs.lease import OutputBusy
    from jobs.manifest import summary_lines
    from jobs.pipeline import (
        EngineDied,
        EngineUnavailable,
        OutputExistsError,
        StorageError,
        run_job,
        stop_ray,
    )
    from jobs.retry import StorageUnavailable
    from jobs.screen import BenchmarkError
    from trace_workers.sandbox import SandboxError
    from translate.endpoint import EndpointRefused

    try:
        manifest = run_job(cfg, args.command)
    except (OutputExistsError, FileNotFoundError, SandboxError, StorageError, BenchmarkError,
            OutputBusy, EngineUnavailable, EndpointRefused) as exc:
        return _stop(f"groundtrace: {exc}", 2, stop_ray)
    except StorageUnavailable as exc:
        return _stop(f"groundtrace: object storage unavailable: {exc}; the same command resumes "
                     "where this run stopped", 3, stop_ray)
    except EngineDied as exc:
        return _stop(f"groundtrace: {exc}", 3, stop_ray)
    for line in summary_lines(manifest):
        print(line)
    print(f"output: {cfg.output}")
    return 0 if manifest["accounting_ok"] else 1


def _stop(line: str, code: int, stop_ray) -> int:
    """A job that cannot go on ends in one line, the last one: Ray, which may still be
    forwarding its processes' logs to this terminal, is stopped first."""
    stop_ray()
    print(line, file=sys.stderr, flush=True)
    return code


def _report(output: str) -> int:
    from jobs.report import write_report

    try:
        print(f"report: {write_report(output)}")
    except FileNotFoundError:
        print(f"groundtrace: {output} holds no finished run (no manifest.json)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"groundtrace: cannot build the report of {output}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
