"""The jobs as one streaming Ray Data graph each.

    trace:      read shards (PyEduSource) -> expand: parse, program + pair filters (tasks)
                  -> trace (TraceActor pool, 1 CPU each) -> sink -> manifest.json
    run:        trace -> translate -> verify -> build -> sink, streaming: the translator
                  consumes traces while tracing still runs
    translate:  read an earlier run's traces -> translate -> verify -> build -> sink
    build:      read an earlier run's translations -> build -> sink

The translator is the LLM-free renderer (a CPU map) or vLLM through ray.data.llm.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from dataclasses import replace

import pyarrow.fs as pafs
import ray

from jobs.config import JobConfig, TranslateConfig
from jobs.datasource import PyEduSource
from jobs.lease import LEASE_FILE, OutputBusy, OutputLease
from jobs.ledger import RUN_FILE, Ledger, Resumed
from jobs.local_ray import local_ray_line, quiet_start_up, running_ray
from jobs.manifest import build_manifest
from jobs.preflight import NodeHealth, no_jail_anywhere, probe_nodes
from jobs.progress import ProgressReporter
from jobs.report import REPORT_FILE, write_report
from jobs.retry import BUDGET_ENV, StorageUnavailable
from jobs.screen.stage import SCREEN_DIR, ScreenLookup, run_screen
from jobs.sink import LABEL_OF_FOLDER, OUTPUT_DIRS, StreamSink
from jobs.sources import REMOTE_SCHEMES, filesystem_for, input_versions, list_inputs
from jobs.storage import ShardWriter
from trace_workers.actor import TraceActor
from trace_workers.expand import expand_batch
from trace_workers.jail.sandbox import SandboxError, bwrap_path, check_arch
from trace_workers.stats import TRACE_STAGES, TRANSLATE_STAGES
from trace_workers.stream import EXAMPLE, REJECT, TRACE, TRANSLATION
from translate.endpoint import build_endpoint_processor, check_endpoint
from translate.export import dataset_info
from translate.llm import LLMSettings, build_llm_processor  # ray.data.llm loads when called
from translate.sandbox_check import CheckActor
from translate.stage import (
    VerifySettings,
    build_from_records,
    render_batch,
    to_requests_batch,
    traces_from_records,
    verify_batch,
)
from translate.tasks import REGISTRY, parse_tasks

# job -> (its stages, the output kinds it writes)
JOBS = {
    "trace": (TRACE_STAGES, (TRACE, REJECT)),
    "run": (TRACE_STAGES + TRANSLATE_STAGES, (TRACE, TRANSLATION, EXAMPLE, REJECT)),
    "translate": (("read_traces",) + TRANSLATE_STAGES, (TRANSLATION, EXAMPLE, REJECT)),
    "build": (("read_translations", "build"), (EXAMPLE, REJECT)),
}
# where a job that starts from an earlier run reads inside that run's folder
READS_FROM = {"translate": "traces", "build": "translations"}


class OutputExistsError(RuntimeError):
    pass


class EngineUnavailable(RuntimeError):
    """The translating engine cannot run where this job runs (no GPU on a local Ray)."""


class EngineDied(RuntimeError):
    """An engine replica died more often than --max-engine-restarts allows."""


class RayUnavailable(RuntimeError):
    """No Ray answers at the address the job was given."""


class StorageError(RuntimeError):
    """An input or output place that cannot be read or written (credentials, endpoint...)."""


def cluster_address(cfg: JobConfig) -> str | None:
    """``--address``, else RAY_ADDRESS; None means a local Ray."""
    return cfg.ray.address or os.environ.get("RAY_ADDRESS")


_RAY_STARTED_HERE: list[bool] = []  # a Ray this process connected to or started, not one it was given


def stop_ray() -> None:
    """Disconnect from (or stop) the Ray this process started, so that nothing Ray still
    forwards to the terminal comes after a job's last line (an error's one line)."""
    if _RAY_STARTED_HERE and ray.is_initialized():
        ray.shutdown()
        _RAY_STARTED_HERE.clear()


def init_ray(cfg: JobConfig) -> None:
    """Connect to a cluster or start a local Ray."""
    if ray.is_initialized():
        return
    _RAY_STARTED_HERE.append(True)
    address = cluster_address(cfg)
    # the retry budget reaches every worker that touches storage (jobs.retry)
    runtime_env = {"env_vars": {BUDGET_ENV: str(cfg.ray.storage_retry_s)}}
    quiet_start_up()
    if address == "auto" and running_ray() is None:
        _RAY_STARTED_HERE.clear()
        raise RayUnavailable("--address auto: no Ray is running on this machine (`ray start "
                             "--head` starts one); without --address the job starts its own")
    if address:
        print(f"groundtrace: running on the Ray at {address}", flush=True)
        try:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        except ConnectionError as exc:
            _RAY_STARTED_HERE.clear()
            raise RayUnavailable(f"no Ray answers at --address {address} ({exc}); without "
                                 "--address the job starts a Ray of its own") from None
        return
    cores = os.cpu_count() or 1
    # Logical CPUs beyond the cores leave room for the light read/expand/write tasks beside
    # one trace actor per core (and ray.data.llm's CPU stages beside a local engine); without
    # them the stages wait on each other forever.
    # (each round of requests, the first and each revision's, is a processor and a verify of
    # its own)
    rounds = 1 + max(0, cfg.translate.revisions)
    extra = 2 + 4 * rounds if cfg.translate.uses_llm() else 2
    cpus = cfg.ray.num_cpus or cores + extra
    print(local_ray_line(cpus), flush=True)
    # address="local": a Ray of the job's own, never one that `ray start` keeps (or left an
    # address file of) on this machine (jobs.local_ray)
    # A local Ray's workers inherit this process's environment: the budget goes there rather
    # than through a runtime_env, whose set-up costs each worker a third more CPU to start.
    os.environ.update(runtime_env["env_vars"])
    ray.init(address="local", num_cpus=cpus, include_dashboard=False,
             configure_logging=False, log_to_driver=True)


def engine_wait(cfg: JobConfig, job: str):
    """None when the engine's GPUs are there (or no GPU engine runs); on a local Ray without
    them, EngineUnavailable at once (the engine's actor would wait forever); on a cluster
    (whose autoscaler may add GPU nodes), a function that says what the job waits for."""
    if job == "trace" or not cfg.translate.uses_engine() or cfg.translate.device != "gpu":
        return None
    t = cfg.translate
    per_engine = t.tensor_parallel_size * t.pipeline_parallel_size
    resource = f"accelerator_type:{t.accelerator_type}" if t.accelerator_type else "GPU"
    kind = f"{t.accelerator_type} " if t.accelerator_type else ""

    def short() -> str | None:
        have = ray.cluster_resources().get("GPU", 0)
        typed = ray.cluster_resources().get(resource, 0) if t.accelerator_type else have
        if have >= per_engine and typed > 0:
            return None
        return (f"waiting for GPUs: each of {t.replicas} engine replica(s) needs {per_engine} "
                f"{kind}GPU(s); the cluster has {have:g} GPU(s) now")

    if short() is None:
        return None
    if not cluster_address(cfg):
        raise EngineUnavailable(
            f"--model runs vLLM on GPUs (--device gpu), and this machine's Ray has "
            f"{ray.cluster_resources().get('GPU', 0):g} {kind}GPU(s) where an engine needs "
            f"{per_engine}: run with --device cpu (vLLM's CPU backend), or on a cluster with "
            "GPU nodes (--address)")
    return short


def trace_actor_count(cfg: JobConfig, health: NodeHealth | None = None) -> int:
    if cfg.ray.actors:
        return cfg.ray.actors
    if cluster_address(cfg):
        cpus = ray.cluster_resources().get("CPU", 1)
        if health is not None and health.broken:  # actors go to the nodes with a working jail
            cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in ray.nodes()
                       if n.get("Alive") and n["NodeID"] in health.healthy)
        return max(1, int(cpus) - 2)
    return max(1, min(os.cpu_count() or 1, int(ray.cluster_resources().get("CPU", 1)) - 1))


def build_trace_dataset(cfg: JobConfig, files: list[str], actors: int,
                        skip: frozenset[str] = frozenset(),
                        screen: ScreenLookup | None = None,
                        jail_nodes: dict | None = None) -> ray.data.Dataset:
    """``jail_nodes``: what keeps the trace actors off nodes that cannot start the sandbox."""
    ds = ray.data.read_datasource(PyEduSource(files, cfg.ray.programs_per_block, skip))
    ds = ds.map_batches(
        expand_batch, fn_kwargs={"cfg": cfg.trace.raw_filter(), "screen": screen},
        batch_format="pyarrow", batch_size=None,
    )
    return ds.map_batches(
        TraceActor, fn_constructor_kwargs={"cfg": cfg.trace.stage()},
        batch_format="pyarrow", batch_size=cfg.ray.batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, **(jail_nodes or {}),
    )


def request_rounds(cfg: JobConfig) -> int:
    """1 + --revisions; but the revisions of engines on GPUs need an engine pool of their own,
    and a local Ray whose GPUs hold only the first pool would wait for it forever: there the
    run goes without revisions, and says so in one line (a cluster's autoscaler may add GPUs)."""
    t = cfg.translate
    rounds = 1 + max(0, t.revisions)
    if rounds == 1 or not t.uses_engine() or t.device != "gpu" or cluster_address(cfg):
        return rounds
    per_engine = t.tensor_parallel_size * t.pipeline_parallel_size
    need = (t.replicas + t.revision_replicas) * per_engine
    have = ray.cluster_resources().get("GPU", 0)
    if have >= need:
        return rounds
    print(f"groundtrace: no revisions in this run: they need {t.revision_replicas} more engine "
          f"replica(s) ({need:g} GPUs in all) and this machine's Ray has {have:g}; translate "
          "through an endpoint (--endpoint) for revisions on one GPU", flush=True)
    return 1


def add_translation(ds: ray.data.Dataset, cfg: JobConfig, keep_traces: bool,
                    llm: LLMSettings | None = None,
                    jail_nodes: dict | None = None) -> ray.data.Dataset:
    """translate -> verify -> build on a stream that carries trace rows (``llm``: engine
    settings other than the config's, for benchmarks)."""
    verify_cfg = VerifySettings(thinking=cfg.translate.enable_thinking,
                                float_rel_tol=cfg.trace.float_rel_tol,
                                check_steps=cfg.translate.steps_checked_for(),
                                min_step_coverage=cfg.translate.min_step_coverage)
    build_cfg = cfg.build.settings()
    task_cfg = cfg.translate.task_settings(cfg.trace.seed)
    if not cfg.translate.uses_llm():
        return ds.map_batches(render_batch, fn_kwargs={
            "verify_cfg": verify_cfg, "build_cfg": build_cfg, "keep_traces": keep_traces,
            "task_cfg": task_cfg}, batch_format="pyarrow", batch_size=None)
    ds = ds.map_batches(to_requests_batch, fn_kwargs={"keep_traces": keep_traces,
                                                      "task_cfg": task_cfg},
                        batch_format="pyarrow", batch_size=None)
    # one round per attempt: a generation the check rejects goes back for a revision through
    # the next round's processor (translate/revision.py); the last round's verdicts are final
    rounds = request_rounds(cfg)
    for attempt in range(1, rounds + 1):
        if cfg.translate.endpoint and llm is None:
            model = str(cfg.translate.model)
            processor = build_endpoint_processor(cfg.translate.endpoint_settings(
                cfg.trace.seed, rel_tol=cfg.trace.float_rel_tol))
        else:
            llm = llm or cfg.translate.llm(cfg.trace.seed)
            engines = llm if attempt == 1 else replace(llm, replicas=cfg.translate.revision_replicas)
            model, processor = llm.model, build_llm_processor(engines)
        ds = processor(ds)
        ds = ds.map_batches(verify_batch, fn_kwargs={
            "model": model, "verify_cfg": verify_cfg, "build_cfg": build_cfg,
            "revise": attempt < rounds}, batch_format="pyarrow", batch_size=None)
    if runs_proposals(task_cfg.tasks):
        ds = ds.map_batches(CheckActor, fn_constructor_kwargs={
            "cfg": cfg.trace.stage(), "build_cfg": build_cfg}, batch_format="pyarrow",
            batch_size=None, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1,
            **(jail_nodes or {}))
    return ds


def _inside(path: str, folder: str) -> bool:
    if folder.startswith(REMOTE_SCHEMES):
        return path.startswith(folder.rstrip("/") + "/")
    return os.path.abspath(path).startswith(os.path.abspath(folder).rstrip("/") + "/")


def run_inputs(uri: str, sub: str) -> list[str]:
    """An earlier run's output folder means its ``sub`` folder (traces/, translations/)."""
    fs, path = filesystem_for(uri)
    if fs.get_file_info(posixpath.join(path, sub)).type == pafs.FileType.Directory:
        return list_inputs(uri.rstrip("/") + "/" + sub)
    return list_inputs(uri)


def build_dataset(cfg: JobConfig, job: str, files: list[str], actors: int,
                  skip: frozenset[str] = frozenset(),
                  screen: ScreenLookup | None = None,
                  jail_nodes: dict | None = None) -> ray.data.Dataset:
    """The job's graph over ``files``; ``skip``: input blocks an earlier attempt wrote whole."""
    if job in READS_FROM:
        ds = ray.data.read_datasource(PyEduSource(files, cfg.ray.programs_per_block, skip))
        if job == "build":
            return ds.map_batches(build_from_records, fn_kwargs={"build_cfg": cfg.build.settings()},
                                  batch_format="pyarrow", batch_size=None)
        ds = ds.map_batches(traces_from_records, batch_format="pyarrow", batch_size=None)
        return add_translation(ds, cfg, keep_traces=False, jail_nodes=jail_nodes)
    ds = build_trace_dataset(cfg, files, actors, skip, screen, jail_nodes)
    return add_translation(ds, cfg, keep_traces=True, jail_nodes=jail_nodes) if job == "run" else ds


def resume_key(cfg: JobConfig, job: str, files: list[str]) -> dict:
    """What must be the same for a run to go on with an earlier attempt's output: the job, its
    settings, and each input file as it was (size and modification time: a file rewritten
    between attempts would shift the blocks the ledger names)."""
    settings = cfg.to_dict()
    return json.loads(json.dumps({
        "job": job, "inputs": input_versions(files), "trace": settings["trace"], "screen": settings["screen"],
        "translate": {k: v for k, v in settings["translate"].items()
                      if k not in TranslateConfig.TRANSPORT},
        "build": settings["build"],
        "programs_per_block": cfg.ray.programs_per_block,
    }))


def finished_run(cfg: JobConfig, job: str, files: list[str]) -> dict | None:
    """The manifest of the run OUT already holds when it is this one, finished (the same job,
    settings and inputs: the resume key); None when OUT holds no finished run, or with
    ``--overwrite``. A finished run of anything else is refused, naming what differs."""
    writer = ShardWriter(cfg.output)
    manifest = posixpath.join(writer.root, "manifest.json")
    if cfg.overwrite or writer.fs.get_file_info(manifest).type == pafs.FileType.NotFound:
        return None
    before = Ledger(writer.fs, writer.root, LABEL_OF_FOLDER).run_header().get("key") or {}
    if before != resume_key(cfg, job, files):
        raise OutputExistsError(f"{cfg.output} already holds a finished run of "
                                f"{_what_differs(before, resume_key(cfg, job, files))}; pass "
                                "--overwrite to replace it")
    try:
        with writer.fs.open_input_stream(manifest) as stream:
            return json.loads(stream.read().decode())
    except (OSError, ValueError) as exc:
        raise OutputExistsError(f"{cfg.output} holds a manifest.json that cannot be read ({exc}); "
                                "pass --overwrite to run again") from None


def finish_after_manifest(cfg: JobConfig) -> None:
    """What a run writes after its manifest (the report), written again: a stop at any
    instant after the manifest leaves an output the same command completes."""
    try:
        write_report(cfg.output)
    except Exception as exc:  # the data is written; a report that fails says so and no more
        print(f"groundtrace: report.html not written: {type(exc).__name__}: {exc}", flush=True)


def prepare_output(cfg: JobConfig, job: str, files: list[str]) -> Resumed:
    """Make OUT ready: resume an unfinished run of the same job, settings and inputs (unless
    ``--fresh``), else clear it; a finished run (manifest.json) is replaced only with
    ``--overwrite``."""
    writer = ShardWriter(cfg.output)
    ledger = Ledger(writer.fs, writer.root, LABEL_OF_FOLDER)
    key = resume_key(cfg, job, files)
    manifest = posixpath.join(writer.root, "manifest.json")
    resumed = Resumed()
    resumable = writer.fs.get_file_info(manifest).type == pafs.FileType.NotFound
    if not resumable:
        if not cfg.overwrite:
            raise OutputExistsError(
                f"{cfg.output} already holds a run (manifest.json); pass --overwrite to replace it")
        writer.fs.delete_file(manifest)
    report = posixpath.join(writer.root, REPORT_FILE)
    if writer.fs.get_file_info(report).type != pafs.FileType.NotFound:
        writer.fs.delete_file(report)  # it belongs to the finished run being replaced
    if ledger.exists() and not cfg.fresh and resumable:
        before = ledger.run_header().get("key") or {}
        if before == key:
            resumed = ledger.resume(JOBS[job][0], writer, OUTPUT_DIRS[:-1])
        elif not cfg.overwrite:
            raise OutputExistsError(f"{cfg.output} holds an unfinished run of {_what_differs(before, key)}"
                                    "; pass --overwrite to start over")
    if not resumed.attempt:
        for sub in (*OUTPUT_DIRS, SCREEN_DIR):
            path = posixpath.join(writer.root, sub)
            if writer.fs.get_file_info(path).type != pafs.FileType.Directory:
                continue
            if sub != posixpath.dirname(LEASE_FILE):
                writer.fs.delete_dir(path)
                continue
            for info in writer.fs.get_file_info(pafs.FileSelector(path, recursive=True)):
                if info.type == pafs.FileType.File and info.path != posixpath.join(
                        writer.root, LEASE_FILE):  # this run's own lease stays
                    writer.fs.delete_file(info.path)
    writer.ensure_dir(posixpath.dirname(RUN_FILE))
    writer.write_text(RUN_FILE, json.dumps({"key": key, "attempt": resumed.attempt}, indent=1))
    return resumed


def _causes(exc: BaseException):
    """``exc`` and every error behind it (causes, contexts, and the ``cause`` that Ray's task
    and actor errors carry), each once."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__, getattr(current, "cause", None)]


def storage_failure(exc: BaseException) -> StorageUnavailable | None:
    """The StorageUnavailable behind an error that Ray raised for a task or an actor, if any."""
    # the type itself: Ray's wrapper of a task's error subclasses it too
    return next((c for c in _causes(exc) if type(c) is StorageUnavailable), None)


def engine_died(exc: BaseException) -> bool:
    """Did Ray raise ``exc`` because a vLLM engine actor died for good?"""
    from ray.exceptions import RayActorError

    if any(isinstance(c, RayActorError) and "vLLMEngine" in str(c) for c in _causes(exc)):
        return True
    return "vLLMEngine" in str(exc) and ("ActorDiedError" in str(exc) or "died" in str(exc))


def _what_differs(before: dict, now: dict) -> str:
    """The first thing that keeps an unfinished run from being resumed, in words."""
    if before.get("job") != now.get("job"):
        return f"another job ({before.get('job')})"
    old_inputs = {uri: rest for uri, *rest in before.get("inputs") or [] if isinstance(uri, str)}
    new_inputs = {uri: rest for uri, *rest in now["inputs"]}
    if set(old_inputs) != set(new_inputs):
        return "other input files"
    for uri, version in new_inputs.items():
        if old_inputs[uri] != version:
            return f"an input that has changed since ({uri}: size or modification time)"
    changed = [f"--{name.replace('_', '-')} {value!r} (now {now[section].get(name)!r})"
               for section in ("trace", "screen", "translate", "build")
               for name, value in sorted((before.get(section) or {}).items())
               if isinstance(now.get(section), dict) and now[section].get(name) != value]
    if changed:
        return "other settings: " + ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
    return "other settings"


def runs_proposals(tasks: tuple[str, ...]) -> bool:
    """Do some of these tasks run an LLM's proposal in the sandbox (translate.sandbox_check)?"""
    return any(REGISTRY[task].runs_proposal for task in tasks)


def needs_sandbox(job: str, tasks: tuple[str, ...]) -> bool:
    """A job that traces, or checks an LLM's proposed inputs or programs, runs programs."""
    return job not in READS_FROM or runs_proposals(tasks)


def run_job(cfg: JobConfig, job: str = "trace") -> dict:
    """Run one job (trace, run, translate or build) end to end; returns the manifest (also in
    OUT). A killed run goes on where it stopped when the same command is run again."""
    stages, kinds = JOBS[job]
    cfg.validate()  # a bad setting fails before anything starts
    os.environ[BUDGET_ENV] = str(cfg.ray.storage_retry_s)  # this process's storage retries
    tasks = parse_tasks(cfg.translate.tasks)
    if EXAMPLE in kinds:  # rows some tasks write of their own (the rewrite task's programs)
        kinds = (*kinds, *(REGISTRY[t].output_kind for t in tasks if REGISTRY[t].output_kind))
    if needs_sandbox(job, tasks):
        bwrap_path()  # fail before starting Ray when the sandbox cannot exist
        check_arch(cfg.trace.allow_unfiltered_arch)
    try:
        files = list_inputs(cfg.input) if job not in READS_FROM else run_inputs(cfg.input, READS_FROM[job])
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot list the input {cfg.input}: {exc}") from None
    if job in READS_FROM:
        if any(_inside(f, cfg.output) for f in files):
            raise OutputExistsError(f"the output folder holds this job's input: write the {job} "
                                    "output to another folder")
    if cfg.translate.endpoint and job not in ("trace", "build"):
        # one request before the output is touched: a wrong URL, key or model is one line
        print(f"groundtrace: {check_endpoint(cfg.translate.endpoint_settings(cfg.trace.seed))}",
              flush=True)
    lease = OutputLease(ShardWriter(cfg.output), cfg.ray.lease_timeout_s,
                        what=f"groundtrace {job} --input {cfg.input}")
    try:
        lease.acquire()
    except OSError as exc:
        raise StorageError(f"cannot take the output {cfg.output}: {exc}") from None
    try:
        return _run_leased(cfg, job, files, stages, kinds, tasks, lease)
    finally:
        lease.release()


def _run_leased(cfg: JobConfig, job: str, files: list[str], stages: tuple[str, ...],
                kinds: tuple[str, ...], tasks: tuple[str, ...], lease: OutputLease) -> dict:
    """run_job's part that writes the output, while this run holds its lease."""
    try:
        finished = finished_run(cfg, job, files)
    except OSError as exc:
        raise StorageError(f"cannot read the output {cfg.output}: {exc}") from None
    if finished is not None:
        finish_after_manifest(cfg)
        print(f"groundtrace: {cfg.output} already holds this run, finished (manifest.json): "
              "nothing to do; the report is written again", flush=True)
        return finished
    init_ray(cfg)
    waiting = engine_wait(cfg, job)  # before the output is touched: a refusal leaves it as it was
    health = None
    if needs_sandbox(job, tasks):
        health = probe_nodes(cfg.trace.stage().limits, bool(cluster_address(cfg)))
        if not health.healthy:
            raise SandboxError(no_jail_anywhere(health))
        for info in health.broken.values():
            print(f"groundtrace: no trace actor on {info['host']}: its sandbox does not start "
                  f"({info['reason']})", flush=True)
    try:
        resumed = prepare_output(cfg, job, files)
    except OSError as exc:
        raise StorageError(f"cannot prepare the output {cfg.output}: {exc}") from None
    if resumed.attempt:
        print(f"groundtrace: resuming {cfg.output} (attempt {resumed.attempt + 1}): "
              f"{len(resumed.whole_blocks)} input blocks already written, "
              f"{resumed.blocks_dropped} to do again", flush=True)
    actors = trace_actor_count(cfg, health) if job not in READS_FROM else 0
    started = time.time()
    screen, screened = screen_inputs(cfg, job, files)
    sink = StreamSink(cfg.output, kinds, cfg.ray.rows_per_shard, resumed.attempt)
    writer = ShardWriter(cfg.output)
    ledger = Ledger(writer.fs, writer.root, LABEL_OF_FOLDER)
    with ProgressReporter(ledger, stages, cfg.ray.progress_s, waiting=waiting):
        try:
            build_dataset(cfg, job, files, actors, resumed.whole_blocks, screen,
                          health.remote_args() if health else None).write_datasink(sink)
        except Exception as exc:
            failure = storage_failure(exc)
            if failure is not None:
                raise StorageUnavailable(" ".join(str(failure).split())) from None
            if engine_died(exc):
                raise EngineDied(
                    f"the translating engine died more than --max-engine-restarts "
                    f"({cfg.translate.max_engine_restarts}) times; what was written is kept: the "
                    "same command resumes") from None
            raise
    wall_s = time.time() - started
    sink.stats.merge(resumed.stats.to_dict())
    for label, n in resumed.written.items():
        sink.written[label] = sink.written.get(label, 0) + n
    if EXAMPLE in kinds:
        writer.write_text("training/dataset_info.json", json.dumps(
            dataset_info(reasoning_in=cfg.build.reasoning_in), indent=2) + "\n")
    manifest = build_manifest(cfg, sink, started, wall_s, actors, job, stages,
                              cluster_address(cfg) or "local")
    if screened is not None:
        manifest["screen"] = screened
        manifest["contaminated_by"] = dict(sink.stats.details.get("contaminated_by", {}))
    if health is not None:
        manifest["sandbox_nodes"] = health.to_dict()
    manifest["resume"] = {"attempt": resumed.attempt + 1,
                          "blocks_kept": len(resumed.whole_blocks),
                          "blocks_redone": resumed.blocks_dropped,
                          "orphans_deleted": resumed.orphans_deleted}
    if lease.lost:
        raise OutputBusy(f"another run took {cfg.output} over while this one ran (its lease was "
                         f"not renewed for {cfg.ray.lease_timeout_s:.0f} s): this run stops "
                         "without a manifest; the other one finishes the output")
    writer.write_text("manifest.json", json.dumps(manifest, indent=2) + "\n")
    finish_after_manifest(cfg)
    return manifest


def screen_inputs(cfg: JobConfig, job: str, files: list[str]) -> tuple[ScreenLookup | None, dict | None]:
    """Run (or reuse) the screen for a job that reads programs: the lookup the read stage
    applies and what the screen found, for the manifest."""
    settings = cfg.screen.settings(cfg.trace.raw_filter())
    if job in READS_FROM or not settings.active():
        return None, None
    print(f"groundtrace: screening {len(files)} input file(s) for duplicates"
          + (f" and {len(settings.decontaminate)} benchmark file(s)" if settings.decontaminate else ""),
          flush=True)
    try:
        done = run_screen(settings, files, cfg.output, cfg.ray.programs_per_block)
    except OSError as exc:
        raise StorageError(f"cannot screen the input: {exc}") from None
    found = ", ".join(f"{n} {reason}" for reason, n in sorted(done["rejected"].items())) or "nothing"
    print(f"groundtrace: screen: {found} ({done['wall_s']:.1f} s)", flush=True)
    return ScreenLookup(cfg.output, frozenset(done["files"]), done.get("token", "")), done


def run_trace(cfg: JobConfig) -> dict:
    return run_job(cfg, "trace")
