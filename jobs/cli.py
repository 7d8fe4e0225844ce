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
  groundtrace plan --input IN [run's flags]   the bill before the run: examples, tokens,
                                              CPU and GPU hours and wall clock, predicted
                                              from a seeded sample (nothing is written)

The translator is an LLM on vLLM when --model is given, else the LLM-free renderer.
Output: OUT/traces/ (kept runs), OUT/translations/ (verified reasoning), OUT/training/
(LLaMA-Factory messages JSONL, Parquet, dataset_info.json), OUT/rejects/ (every other row,
with its stage and reason), OUT/manifest.json (config, versions, counts per stage and reason),
OUT/report.html (funnel, reject reasons, length histograms, throughput, samples).
A killed run started again with the same command goes on where it stopped.
Before tracing, records that repeat an earlier one, near copies of an earlier program and
programs that share code with a benchmark (--decontaminate FILE) are rejected.
Settings come from --config FILE (YAML/TOML, sections [trace] [screen] [translate] [build]
[ray] [plan]) and
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
    plan = commands.add_parser(
        "plan", help="predict a run's examples, tokens, hours and wall clock from a sample",
        description="Run the real stages (screen, filters, sandboxed tracing, tasks, the "
        "renderer or the prompts an LLM would get) on a seeded sample spread over the input "
        "files, and scale what they did to the whole input: the funnel by stage and reason, "
        "sandbox core-hours, requests and prompt tokens (in --model's tokenizer when it loads "
        "here), output tokens and GPU hours, the examples expected, and the wall clock on "
        "--cpus and --gpus. Each figure has a range (5th to 95th percentile over the sample's "
        "units resampled). Takes the flags of `groundtrace run`; nothing is written, --output "
        "is not used. The JSON (--json) is described in docs/plan.md.")
    config_mod.add_flags(plan, ("trace", "screen", "translate", "build", "ray", "plan"))
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (docs/plan.md)")
    report = commands.add_parser(
        "report", help="rebuild OUT/report.html", description="Rebuild the run report "
        "(OUT/report.html) from a finished run's output folder, local or s3:// gs://.")
    report.add_argument("output", metavar="OUT", help="a finished run's output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        return _report(args.output)
    if args.command == "plan":
        return _plan(args)
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
        RayUnavailable,
        StorageError,
        run_job,
        stop_ray,
    )
    from jobs.retry import StorageUnavailable
    from jobs.screen.stage import BenchmarkError
    from trace_workers.jail.sandbox import SandboxError
    from translate.endpoint import EndpointRefused

    try:
        manifest = run_job(cfg, args.command)
    except (OutputExistsError, FileNotFoundError, SandboxError, StorageError, BenchmarkError,
            OutputBusy, EngineUnavailable, EndpointRefused, RayUnavailable) as exc:
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


def _plan(args: argparse.Namespace) -> int:
    try:
        cfg = config_mod.from_args(args)
        cfg.validate(engine=False)  # a plan needs no model's config (nor the model)
    except (ValueError, OSError) as exc:
        print(f"groundtrace: bad configuration: {exc}", file=sys.stderr)
        return 2
    import json

    from jobs.plan.estimate import InputUnreadable, plan_job
    from jobs.plan.view import plan_lines, progress_printer
    from jobs.screen.stage import BenchmarkError
    from trace_workers.jail.sandbox import SandboxError

    try:
        plan = plan_job(cfg, progress=progress_printer())
    except (FileNotFoundError, SandboxError, BenchmarkError, InputUnreadable) as exc:
        print(f"groundtrace: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(plan, indent=2) if args.json else "\n".join(plan_lines(plan)))
    return 0


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
