"""``groundtrace``: the command line."""

from __future__ import annotations

import argparse
import sys

from jobs import config as config_mod

DESCRIPTION = """\
groundtrace turns Python programs with known inputs into execution-grounded training data.

  groundtrace trace --input IN --output OUT   trace every program in a bubblewrap sandbox
                                              under snoop; keep runs whose result matches

Output: OUT/traces/*.parquet (kept runs), OUT/rejects/*.parquet (every other row, with its
stage and reason), OUT/manifest.json (config, versions, counts per stage and reason).
Settings come from --config FILE (YAML/TOML, sections [trace] and [ray]) and the flags below.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groundtrace", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    trace = commands.add_parser(
        "trace", help="trace PyEdu programs in the sandbox (the trace stage)",
        description="Read PyEdu records, filter them, trace each chosen input in the sandbox "
                    "and write kept traces, rejects and a manifest.",
    )
    config_mod.add_flags(trace)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = config_mod.from_args(args)
    except (ValueError, OSError) as exc:
        print(f"groundtrace: bad configuration: {exc}", file=sys.stderr)
        return 2
    from jobs.manifest import summary_lines
    from jobs.pipeline import OutputExistsError, run_trace
    from trace_workers.sandbox import SandboxError

    try:
        manifest = run_trace(cfg)
    except (OutputExistsError, FileNotFoundError, SandboxError) as exc:
        print(f"groundtrace: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(manifest):
        print(line)
    print(f"output: {cfg.output}")
    return 0 if manifest["accounting_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
