"""OUT/report.html: written at the end of every run, rebuilt by `groundtrace report OUT`, and
readable in a real browser (headless Chromium), histograms included."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from jobs import cli
from jobs.config import JobConfig, RayConfig
from jobs.pipeline import run_job
from jobs.progress import progress_line
from jobs.report import BAR_COLOR
from trace_workers.stats import StageStats

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report")]


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def finished(tmp_path_factory, ray_local) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report") / "out"
    cfg = JobConfig(input=str(ROOT / "data" / "sample.jsonl"), output=str(out),
                    ray=RayConfig(actors=2))
    return out, run_job(cfg, "run")


def test_the_report_shows_the_funnel_reasons_histograms_and_samples(finished):
    out, manifest = finished
    page = (out / "report.html").read_text()
    for stage, counts in manifest["counts"].items():
        assert f"<td>{stage}</td><td>{counts['unit']}</td><td>{counts['seen']}</td>" in page
        for reason in counts["reasons"]:
            assert reason in page
    # the funnel chart and the trace-length, reasoning-length and example-length histograms
    assert len(re.findall(r"src='data:image/png;base64,|src=\"data:image/png;base64,", page)) == 4
    # no tokenizer: the examples' lengths in characters, the longest, and how to cap them
    training = manifest["training"]
    assert training["length_unit"] == "characters" and training["longest"] > 1000
    assert sum(training["length_histogram"].values()) == manifest["counts"]["build"]["kept"]
    assert f"the longest is {training['longest']} characters" in page
    assert "--trained-tokenizer and --max-training-tokens" in page
    assert "every row accounted for" in page
    shown = re.search(r"<details open><summary>([0-9a-f-]+)</summary>", page)
    assert shown, "a sample training example is shown, opened"


def test_report_rebuilds_the_page_from_the_output_folder(finished, tmp_path, capsys):
    out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "report.html").unlink()
    assert cli.main(["report", str(copy)]) == 0
    assert (copy / "report.html").read_text() == (out / "report.html").read_text()
    assert capsys.readouterr().out.strip() == f"report: {copy / 'report.html'}"


def test_report_of_a_folder_without_a_finished_run_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_the_page_renders_in_headless_chromium_with_its_charts(finished, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (make test installs it)")
    from PIL import Image

    out, _ = finished
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,2400", f"--screenshot={shot}",
                    (out / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2400)
    bar = tuple(int(BAR_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    near = sum(n for n, rgb in image.getcolors(1 << 24)
               if all(abs(a - b) <= 8 for a, b in zip(rgb, bar, strict=True)))
    # the bars of three decoded, displayed PNG charts (an image that fails shows no such pixels)
    assert near > 5_000, near


def test_progress_lines_count_what_the_ledger_has_committed(finished):
    from jobs.ledger import Ledger
    from jobs.pipeline import JOBS
    from jobs.progress import ProgressReporter
    from jobs.sink import LABEL_OF_FOLDER
    from jobs.storage import ShardWriter

    out, manifest = finished
    writer = ShardWriter(str(out))
    reporter = ProgressReporter(Ledger(writer.fs, writer.root, LABEL_OF_FOLDER), JOBS["run"][0], 0)
    line = reporter.poll()
    for stage, counts in manifest["counts"].items():
        assert f"{stage} {counts['kept']}/{counts['seen']}" in line
    assert reporter.poll().split(": ", 1)[1] == line.split(": ", 1)[1]  # nothing counted twice


def test_a_progress_line_says_when_no_answer_so_far_thinks():
    stats = StageStats()
    stats.note("answers", "no_thinking", 3)
    assert "none of the 3 answers so far thinks" in progress_line(stats, ("translate",), 5.0)
    stats.note("answers", "thinking")
    assert "thinks" not in progress_line(stats, ("translate",), 5.0)
