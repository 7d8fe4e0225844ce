"""The trace job as one streaming Ray Data graph.

    read shards (PyEduSource) -> expand: parse, program + pair filters (tasks)
      -> trace (TraceActor pool, 1 CPU each) -> TraceSink (traces/, rejects/) -> manifest.json
"""

from __future__ import annotations

import json
import os
import posixpath
import time

import pyarrow.fs as pafs
import ray

from jobs.config import JobConfig
from jobs.manifest import build_manifest
from jobs.sink import OUTPUT_KINDS, ShardWriter, TraceSink
from jobs.sources import PyEduSource, list_inputs
from trace_workers.actor import TraceActor
from trace_workers.expand import expand_batch
from trace_workers.sandbox import bwrap_path


class OutputExistsError(RuntimeError):
    pass


def cluster_address(cfg: JobConfig) -> str | None:
    """``--address``, else RAY_ADDRESS; None means a local Ray."""
    return cfg.ray.address or os.environ.get("RAY_ADDRESS")


def init_ray(cfg: JobConfig) -> None:
    """Connect to a cluster or start a local Ray."""
    if ray.is_initialized():
        return
    address = cluster_address(cfg)
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    cores = os.cpu_count() or 1
    # Logical CPUs beyond the cores leave room for the light read/expand/write tasks beside
    # one trace actor per core; without it the stages wait on each other.
    ray.init(num_cpus=cfg.ray.num_cpus or cores + 2, include_dashboard=False,
             configure_logging=False, log_to_driver=True)


def trace_actor_count(cfg: JobConfig) -> int:
    if cfg.ray.actors:
        return cfg.ray.actors
    if cluster_address(cfg):
        return max(1, int(ray.cluster_resources().get("CPU", 1)) - 2)
    return max(1, min(os.cpu_count() or 1, int(ray.cluster_resources().get("CPU", 1)) - 1))


def build_trace_dataset(cfg: JobConfig, files: list[str], actors: int) -> ray.data.Dataset:
    ds = ray.data.read_datasource(PyEduSource(files, cfg.ray.programs_per_block))
    ds = ds.map_batches(
        expand_batch, fn_kwargs={"cfg": cfg.trace.raw_filter()},
        batch_format="pyarrow", batch_size=None,
    )
    return ds.map_batches(
        TraceActor, fn_constructor_kwargs={"cfg": cfg.trace.stage()},
        batch_format="pyarrow", batch_size=cfg.ray.batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
    )


def prepare_output(cfg: JobConfig) -> None:
    writer = ShardWriter(cfg.output)
    manifest = posixpath.join(writer.root, "manifest.json")
    if writer.fs.get_file_info(manifest).type != pafs.FileType.NotFound:
        if not cfg.overwrite:
            raise OutputExistsError(
                f"{cfg.output} already holds a run (manifest.json); pass --overwrite to replace it")
        writer.fs.delete_file(manifest)
    for sub, _ in OUTPUT_KINDS.values():
        path = posixpath.join(writer.root, sub)
        if writer.fs.get_file_info(path).type == pafs.FileType.Directory:
            writer.fs.delete_dir(path)


def run_trace(cfg: JobConfig) -> dict:
    """Run the trace stage end to end; returns the manifest (also written to OUT)."""
    bwrap_path()  # fail before starting Ray when the sandbox cannot exist
    files = list_inputs(cfg.input)
    prepare_output(cfg)
    init_ray(cfg)
    actors = trace_actor_count(cfg)
    started = time.time()
    sink = TraceSink(cfg.output)
    build_trace_dataset(cfg, files, actors).write_datasink(sink)
    wall_s = time.time() - started
    manifest = build_manifest(cfg, sink, started, wall_s, actors)
    ShardWriter(cfg.output).write_text("manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
