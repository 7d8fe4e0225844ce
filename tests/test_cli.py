"""The command line and the configuration it builds."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from jobs import cli
from jobs.config import add_flags, from_args


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(argv)


def test_help_explains_the_command_and_every_setting():
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "trace", "--help"],
                          capture_output=True, text=True, check=True)
    for flag in ("--input", "--output", "--ios-per-program", "--samples-per-problem",
                 "--max-trace-lines", "--timeout-s", "--address", "--config"):
        assert flag in done.stdout


def test_flags_override_the_config_file_which_overrides_defaults(tmp_path):
    (tmp_path / "job.yaml").write_text("input: a.jsonl\ntrace:\n  ios_per_program: 3\n  seed: 9\n")
    cfg = from_args(_args(["--config", str(tmp_path / "job.yaml"), "--seed", "4"]))
    assert (cfg.input, cfg.trace.ios_per_program, cfg.trace.seed) == ("a.jsonl", 3, 4)
    assert cfg.trace.max_trace_lines == 300


def test_toml_config_files_load(tmp_path):
    (tmp_path / "job.toml").write_text('output = "s3://bucket/x"\n[ray]\nactors = 3\n')
    cfg = from_args(_args(["--config", str(tmp_path / "job.toml")]))
    assert (cfg.output, cfg.ray.actors) == ("s3://bucket/x", 3)


def test_unknown_config_keys_are_a_clear_error(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("trace:\n  ios_per_progam: 3\n")
    assert cli.main(["trace", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "ios_per_progam" in capsys.readouterr().err


def test_a_training_layout_that_does_not_exist_is_one_line_before_anything_starts(tmp_path, capsys):
    code = cli.main(["run", "--reasoning-in", "system", "--output", str(tmp_path / "o")])
    assert code == 2 and not (tmp_path / "o").exists()
    assert "reasoning_in must be one of answer, think" in capsys.readouterr().err


def test_a_missing_input_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["trace", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")])
    assert code == 2
    assert "input not found" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--trace-all", "--no-trace-all"])
def test_boolean_flags(flag):
    assert from_args(_args([flag])).trace.trace_all is (flag == "--trace-all")


def test_plain_snoop_reaches_the_sandbox_limits():
    assert from_args(_args([])).trace.stage().limits.fast_tracer is True
    assert from_args(_args(["--plain-snoop"])).trace.stage().limits.fast_tracer is False
