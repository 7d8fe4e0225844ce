"""What a corpus split into many small objects costs against the same corpus in a few files.

    .venv/bin/python bench/many_files.py [--programs 5000] [--files 10 1000] [--where local s3]

The corpus is ``--programs`` generated programs (distinct code, so the screen keeps them and
the trace stage runs them all), each with two inputs whose outputs the generator worked out,
dealt round-robin into each ``--files`` count. For each place (a local folder, or SeaweedFS's
S3 server on loopback, read from and written to S3) and each file count, ``groundtrace trace``
runs with its defaults (the screen on) in a fresh process. It prints the wall seconds of the
whole command, the ratio to the fewest files, and the traces and rejects each run wrote (the
same in every run, or the split changed what the job does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from generated_programs import corpus  # noqa: E402
from seaweed import seaweed_server  # noqa: E402


def deal(lines: list[str], files: int, folder: Path) -> Path:
    folder.mkdir(parents=True)
    parts: list[list[str]] = [[] for _ in range(files)]
    for index, line in enumerate(lines):
        parts[index % files].append(line)
    for index, part in enumerate(parts):
        (folder / f"part-{index:05d}.jsonl").write_text("\n".join(part) + "\n")
    return folder


def upload(folder: Path, server: dict, prefix: str) -> str:
    client = server["client"]
    for path in sorted(folder.iterdir()):
        client.upload_file(str(path), server["BUCKET"], f"{prefix}/{path.name}")
    return f"s3://{server['BUCKET']}/{prefix}"


def run(source: str, output: str, env: dict) -> tuple[float, dict]:
    started = time.monotonic()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "groundtrace"), "trace", "--input", source,
                           "--output", output, "--progress-s", "0"], env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"groundtrace trace failed: {done.stderr[-2000:]}")
    return wall, manifest_of(output, env)


def manifest_of(output: str, env: dict) -> dict:
    if output.startswith("s3://"):
        import boto3

        bucket, _, key = output[len("s3://"):].partition("/")
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        return json.loads(client.get_object(Bucket=bucket, Key=f"{key}/manifest.json")["Body"].read())
    return json.loads((Path(output) / "manifest.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=5000)
    parser.add_argument("--files", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--where", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    args = parser.parse_args()
    lines = corpus(args.programs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="many-files-") as tmp:
        work = Path(tmp)
        folders = {files: deal(lines, files, work / f"in-{files}") for files in args.files}
        for where in args.where:
            if where == "local":
                runs = {files: run(str(folders[files]), str(work / f"out-local-{files}"),
                                   dict(os.environ)) for files in args.files}
            else:
                (work / "weed").mkdir()
                with seaweed_server(work / "weed") as server:
                    env = {**os.environ, **{k: v for k, v in server.items() if k.startswith("AWS_")}}
                    sources = {files: upload(folders[files], server, f"in-{files}")
                               for files in args.files}
                    runs = {files: run(sources[files], f"s3://{server['BUCKET']}/out-{files}", env)
                            for files in args.files}
            first = runs[args.files[0]][0]
            for files, (wall, manifest) in runs.items():
                counts = manifest["counts"]
                rows.append([where, files, f"{wall:.1f}", f"{wall / first:.2f}x",
                             counts["trace_filter"]["kept"], manifest["written"]["rejects"]])
    print(f"{args.programs} generated programs, `groundtrace trace` with its defaults (screen on)")
    print("where | files | wall s | vs fewest files | traces | rejects")
    print("---|---|---|---|---|---")
    for row in rows:
        print(" | ".join(str(cell) for cell in row))


if __name__ == "__main__":
    main()
