"""The job's one configuration: dataclasses, loadable from YAML/TOML, overridden by CLI flags.

Every field's ``metadata["help"]`` doubles as its ``--flag`` help, so the file format, the
defaults and ``--help`` cannot drift apart. Field names are unique across sections, so a flag
is just the field name with dashes (``--ios-per-program``); a file uses sections
(``trace: {ios_per_program: 5}``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from jobs.screen.near_dup import NearDupSettings
from jobs.screen.stage import ScreenSettings
from trace_workers.actor import TraceStageConfig
from trace_workers.jail.sandbox import SandboxLimits
from trace_workers.raw_filter import RawFilterConfig
from trace_workers.records import INPUT_FORMATS
from translate.endpoint import EndpointSettings, public_endpoint
from translate.export import BuildSettings
from translate.http_session import RequestPolicy
from translate.llm import LLMSettings, resolve_max_model_len
from translate.tasks import NEEDS_LLM, TaskSettings, parse_tasks


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


def settings_from(cls: type, config: Any, **given: Any) -> Any:
    """The settings object ``cls`` a part of the job takes: each of its fields from the config's
    field of the same name (``given``: the ones the config names otherwise), never copied by
    hand, so a setting added to both is carried without another line."""
    names = {f.name for f in dataclasses.fields(cls)} - set(given)
    return cls(**{name: getattr(config, name) for name in names if hasattr(config, name)}, **given)


SHARED = object()  # a default written once, in the settings class whose field has this name


def defaults_from(*classes: type):
    """A field whose default is SHARED takes the default of the field of the same name in the
    first of ``classes`` that has one (put it under ``@dataclass``): the classes that use a
    setting hold its default, and the config, its file format and ``--help`` show it."""
    def apply(cls: type) -> type:
        for name, value in list(vars(cls).items()):
            if isinstance(value, dataclasses.Field) and value.default is SHARED:
                owner = next(c for c in classes if name in {f.name for f in dataclasses.fields(c)})
                value.default = next(f.default for f in dataclasses.fields(owner) if f.name == name)
        return cls
    return apply


@dataclass
@defaults_from(RawFilterConfig, TraceStageConfig, SandboxLimits)
class TraceConfig:
    input_format: str = _opt(SHARED, "pyedu (refcode, funcname, ios), call (code, input: a Python "
                                     "argument list, output: a Python literal), or auto: by each "
                                     "record's fields")
    ios_per_program: int = _opt(SHARED, "input/output pairs traced per program at most (seeded "
                                        "sample; 0: all)")
    samples_per_problem: int = _opt(SHARED, "kept traces per problem (seeded; 0 keeps all)")
    trace_all: bool = _opt(SHARED, "run every pair even when a problem already has its samples "
                                  "(slower; gives full status counts)")
    seed: int = _opt(0, "seed for every sample")
    max_trace_lines: int = _opt(SHARED, "the story budget: a kept run is told in fewer lines than "
                                        "this; a longer trace is told with the middle of its long "
                                        "loops and its deep calls folded (story_too_long when "
                                        "even that does not fit)")
    max_run_lines: int = _opt(SHARED, "the run budget: a run is stopped (trace_limit) when its "
                                      "trace reaches this many lines")
    max_trace_bytes: int = _opt(SHARED, "a run is stopped when its trace passes this many characters")
    timeout_s: float = _opt(SHARED, "wall-clock limit of one run, seconds")
    elide: bool = _opt(SHARED, "a problem none of whose runs fits the run budget has its runs "
                               "traced again with the rest of their long loops and deep "
                               "recursion left untraced, each within half of --timeout-s (kept "
                               "traces told with those spans folded); --no-elide: they stay "
                               "trace_limit rejects")
    timeout_streak: int = _opt(SHARED, "after this many timeouts in a row, a program's other runs are "
                                  "rejected as timeout_streak without running (0: never)")
    trace_limit_streak: int = _opt(SHARED, "after this many runs in a row whose trace passed the line "
                                      "budget, each after --trace-limit-streak-s or more, a "
                                      "program none of whose runs returned has its other runs "
                                      "rejected as trace_limit_streak without running (0: never)")
    trace_limit_streak_s: float = _opt(SHARED, "sandbox seconds from which a run over the line budget "
                                            "counts toward --trace-limit-streak")
    plain_snoop: bool = _opt(False, "trace with snoop's own tracer instead of fast_snoop's "
                                    "(the same trace, byte for byte, but slower)")
    allow_unfiltered_arch: bool = _opt(SHARED, "trace on a node whose architecture has no seccomp "
                                              "filter for the jail (x86_64 and aarch64 have one)")
    memory_mb: int = _opt(SHARED, "memory a run may allocate, all its processes together, MiB")
    max_procs: int = _opt(SHARED, "processes and threads per sandbox (holds fork bombs)")
    scratch_mb: int = _opt(SHARED, "size of the run's private /tmp, MiB")
    float_rel_tol: float = _opt(SHARED, "relative tolerance when comparing floats with the expected output")
    max_items: int = _opt(SHARED, "inputs with a container of this many items or more are dropped")
    max_str_chars: int = _opt(SHARED, "inputs with a string of this many characters or more are dropped")
    max_value_bytes: int = _opt(SHARED, "inputs with a value of this many JSON bytes or more are dropped")

    def raw_filter(self) -> RawFilterConfig:
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {', '.join(INPUT_FORMATS)}")
        return settings_from(RawFilterConfig, self)

    def stage(self) -> TraceStageConfig:
        limits = settings_from(SandboxLimits, self, fast_tracer=not self.plain_snoop)
        return settings_from(TraceStageConfig, self, limits=limits)


@dataclass
class ScreenConfig:
    dedup: bool = _opt(True, "reject records that repeat an earlier record (the first in input "
                             "order is kept) as duplicate_record")
    near_dup_threshold: float = _opt(0.8, "reject programs whose code is a near copy of an "
                                          "earlier one (MinHash LSH over 5-token shingles, "
                                          "comments and docstrings left out) from this Jaccard "
                                          "similarity on, as near_duplicate (0: off)")
    decontaminate: list[str] = _opt((), "benchmark file (JSONL or Parquet: CRUXEval, "
                                        "LiveCodeBench, HumanEval, MBPP, or any file with a "
                                        "code column), local or object storage; programs that "
                                        "share code with one of its items are rejected as "
                                        "contaminated (repeat the flag for several)")
    decontaminate_ngram: int = _opt(13, "a program is contaminated when it shares a run of this "
                                        "many normalised code tokens with a benchmark item")

    decontaminate_coverage: float = _opt(0.5, "...and holds at least this share of the item's "
                                              "runs (one shared run is an idiom, not a copy)")

    def settings(self, raw_filter: RawFilterConfig) -> ScreenSettings:
        if not 0 <= self.near_dup_threshold <= 1:
            raise ValueError("near_dup_threshold must be between 0 and 1")
        if self.decontaminate_ngram < 4:
            raise ValueError("decontaminate_ngram must be 4 or more (shorter runs match by chance)")
        files = (self.decontaminate,) if isinstance(self.decontaminate, str) else self.decontaminate
        near = NearDupSettings(threshold=self.near_dup_threshold) if self.near_dup_threshold else None
        if not 0 < self.decontaminate_coverage <= 1:
            raise ValueError("decontaminate_coverage must be above 0 and at most 1")
        return ScreenSettings(dedup=self.dedup, near_dup=near, decontaminate=tuple(files or ()),
                              ngram=self.decontaminate_ngram,
                              coverage=self.decontaminate_coverage, raw_filter=raw_filter)


TRANSLATORS = ("auto", "render", "llm")


@dataclass
@defaults_from(LLMSettings, EndpointSettings)
class TranslateConfig:
    translator: str = _opt("auto", "render: the LLM-free renderer; llm: vLLM with --model; "
                                   "auto: llm when a model is given, else render")
    model: str | None = _opt(None, "the translating model: a local folder or a model id")
    device: str = _opt(SHARED, "where vLLM runs: gpu, or cpu (vLLM's CPU backend)")
    max_model_len: int | None = _opt(None, "context of the engine in tokens (default: the model's "
                                           "own, from its config); longer prompts are rejected")
    max_tokens: int | None = _opt(None, "most tokens generated per translation (default: "
                                        f"{LLMSettings.max_tokens}, and never more than the "
                                        "context leaves after the prompt; through an endpoint, "
                                        "counted by the server's /tokenize where it has one, "
                                        "else left to the server)")
    min_new_tokens: int = _opt(SHARED, "a prompt must leave this many tokens for the generation")
    temperature: float = _opt(SHARED, "sampling temperature")
    top_p: float = _opt(SHARED, "nucleus sampling")
    top_k: int = _opt(SHARED, "top-k sampling")
    min_p: float = _opt(SHARED, "min-p sampling")
    enable_thinking: bool = _opt(SHARED, "chat template with thinking on; a generation must then "
                                       "finish its thinking (</think>)")
    dtype: str = _opt(SHARED, "engine dtype (auto, bfloat16, float16)")
    tensor_parallel_size: int = _opt(SHARED, "GPUs per engine (tensor parallel)")
    pipeline_parallel_size: int = _opt(SHARED, "pipeline stages per engine")
    max_num_seqs: int = _opt(SHARED, "sequences an engine runs at once")
    gpu_memory_utilization: float = _opt(SHARED, "share of GPU memory the engine may take")
    enforce_eager: bool = _opt(SHARED, "no CUDA graphs (faster start, slower decode)")
    load_format: str | None = _opt(None, "weights format; 'dummy' = random weights (benchmarks)")
    accelerator_type: str | None = _opt(None, "Ray accelerator type for the engine (e.g. H100)")
    replicas: int = _opt(SHARED, "engine replicas (data parallel)")
    llm_batch_size: int = _opt(LLMSettings.batch_size, "rows per batch sent to an engine")
    max_engine_restarts: int = _opt(SHARED, "an engine replica that dies (its process killed, a CUDA "
                                       "error) is started again at most this many times; past "
                                       "that the job stops, resumable, with one line")
    tasks: str = _opt("output", "what each kept trace becomes, comma-separated: output (predict "
                                "the output), variable (questions on values and line counts, "
                                "answered by the trace), input (propose an input for the "
                                "output), rewrite (rewrite the program; kept when it gives "
                                "every output): input and rewrite need an LLM and are checked "
                                "by running them")
    check_steps: str = _opt("llm", "check every value and loop count a reasoning states against "
                                   "the trace (a wrong one is a wrong_step reject): llm (an LLM's "
                                   "translations), all (the renderer's too: a control, about 1 ms "
                                   "an item, twice the renderer's own cost), or off")
    min_step_coverage: float = _opt(0.0, "reasoning whose right steps state less than this share "
                                         "of the trace's value changes is too_few_steps (0: any)")
    revisions: int = _opt(1, "times a translation the check rejects (a wrong step, a wrong final "
                             "answer, too few steps, an unfinished answer) goes back to the "
                             "model with what failed named, in the same conversation; kept only "
                             "when it then passes every check (0: no second chance)")
    revision_replicas: int = _opt(1, "engine replicas that take the revisions (a pool of their "
                                     "own after the first: only rejected translations reach it)")
    variable_questions: int = _opt(3, "variable questions per trace, at most (seeded; no two with "
                                      "the same answer)")
    endpoint: str | None = _opt(None, "translate through an OpenAI-compatible chat-completions "
                                      "server (http://host:8000/v1) instead of vLLM engines in "
                                      "the job; --model is then the served model's name")
    endpoint_key_env: str = _opt("OPENAI_API_KEY", "the environment variable that holds the "
                                                   "endpoint's API key (none set: no key sent)")
    endpoint_concurrency: int = _opt(RequestPolicy.concurrency, "requests to the endpoint in "
                                                                "flight at once")
    endpoint_qps: float | None = _opt(None, "requests started per second at most (default: no limit)")
    endpoint_timeout_s: float = _opt(RequestPolicy.timeout_s, "seconds one request may take "
                                                              "before it is tried again")
    endpoint_retries: int = _opt(RequestPolicy.retries, "tries after the first of a request "
                                                        "answered 429 or 5xx (after its "
                                                        "Retry-After), timed out or cut; then "
                                                        "endpoint_error")
    endpoint_seed: bool = _opt(True, "send each request a seed of its own (repeatable runs where "
                                     "the server honours seeds; vLLM's CPU backend dies of them)")
    early_stop: bool = _opt(SHARED, "through an endpoint, stream each answer and stop it at its "
                                    "first wrong step (the step check reads the answer as it "
                                    "arrives; a thinking block is not checked): no tokens spent "
                                    "on an answer already wrong")
    endpoint_body: str | None = _opt(None, "JSON object of more request fields, e.g. "
                                           "'{\"top_k\": 20, \"chat_template_kwargs\": "
                                           "{\"enable_thinking\": true}}'")

    def steps_checked_for(self) -> tuple[str, ...]:
        """The translators whose text the step check reads."""
        choices = {"llm": ("llm",), "all": ("llm", "render"), "off": ()}
        if self.check_steps not in choices:
            raise ValueError(f"check_steps must be one of {', '.join(choices)}, not {self.check_steps!r}")
        return choices[self.check_steps]

    def task_settings(self, seed: int) -> TaskSettings:
        return TaskSettings(parse_tasks(self.tasks), self.variable_questions, seed)

    def uses_llm(self) -> bool:
        if self.translator not in TRANSLATORS:
            raise ValueError(f"translator must be one of {', '.join(TRANSLATORS)}, not {self.translator!r}")
        if (self.translator == "llm" or self.endpoint) and not self.model:
            raise ValueError("--endpoint needs --model (the served model's name)" if self.endpoint
                             else "translator llm needs --model")
        if self.endpoint and self.translator == "render":
            raise ValueError("--endpoint translates with an LLM: drop --translator render")
        return self.translator == "llm" or (self.translator == "auto" and bool(self.model))

    # how requests reach the endpoint, not what they ask: a resumed run may change them
    TRANSPORT = ("endpoint_key_env", "endpoint_concurrency", "endpoint_qps", "endpoint_timeout_s",
                 "endpoint_retries")

    def uses_engine(self) -> bool:
        """vLLM engines inside the job (not an endpoint's server)."""
        return self.uses_llm() and not self.endpoint

    def endpoint_settings(self, seed: int, actors: int = 1, rel_tol: float = 1e-6) -> EndpointSettings:
        try:
            body = json.loads(self.endpoint_body) if self.endpoint_body else {}
        except ValueError as exc:
            raise ValueError(f"--endpoint-body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("--endpoint-body must be a JSON object")
        if self.endpoint_concurrency < 1:
            raise ValueError("--endpoint-concurrency must be 1 or more")
        policy = RequestPolicy(concurrency=self.endpoint_concurrency, qps=self.endpoint_qps,
                               timeout_s=self.endpoint_timeout_s, retries=self.endpoint_retries)
        return settings_from(
            EndpointSettings, self, url=str(self.endpoint), model=str(self.model),
            key_env=self.endpoint_key_env, seed=seed if self.endpoint_seed else None, body=body,
            early_stop=self.early_stop and "llm" in self.steps_checked_for(), rel_tol=rel_tol,
            batch_size=max(1, self.endpoint_concurrency), actors=actors, policy=policy)

    def device_check(self) -> None:
        if self.device not in ("gpu", "cpu"):
            raise ValueError(f"device must be gpu or cpu, not {self.device!r}")

    def llm(self, seed: int) -> LLMSettings:
        self.device_check()
        return settings_from(
            LLMSettings, self, model=str(self.model), seed=seed, batch_size=self.llm_batch_size,
            max_model_len=resolve_max_model_len(str(self.model), self.max_model_len),
            max_tokens=self.max_tokens or LLMSettings.max_tokens)


@dataclass
@defaults_from(BuildSettings)
class BuildConfig:
    trained_tokenizer: str | None = _opt(None, "tokenizer (folder or model id) of the model to be "
                                               "trained; enables the token cap")
    max_training_tokens: int = _opt(SHARED, "training examples longer than this (in tokens of "
                                          "--trained-tokenizer) are rejected")
    reasoning_in: str = _opt(SHARED, "where the training examples put the reasoning: answer (the "
                                     "visible answer, as the reference scripts; train with a "
                                     "template without thinking, e.g. LLaMA-Factory's "
                                     "qwen3_nothink) or think (inside <think>...</think>, the "
                                     "final answer after it; for thinking templates, e.g. qwen3)")

    def settings(self) -> BuildSettings:
        return settings_from(BuildSettings, self)


@dataclass
class RayConfig:
    address: str | None = _opt(None, "Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    num_cpus: int | None = _opt(None, "logical CPUs of a local Ray (default: this machine's cores)")
    actors: int | None = _opt(None, "trace actors (default: one per CPU Ray has, less one for the rest)")
    batch_size: int = _opt(4, "programs per batch sent to a trace actor")
    programs_per_block: int = _opt(16, "programs per block read from an input file (the unit a "
                                       "resumed run skips when it was written whole)")
    progress_s: float = _opt(30.0, "seconds between progress lines (the funnel committed so far; "
                                   "0: none)")
    storage_retry_s: float = _opt(180.0, "how long a read, write or listing of object storage is "
                                         "retried through resets, 503 SlowDown and stalls "
                                         "(exponential backoff with jitter) before the job "
                                         "stops, resumable, with one line")
    lease_timeout_s: float = _opt(60.0, "a run holds its output folder while it runs (a second "
                                        "run on it is refused); a lease not renewed for this "
                                        "long, or whose process on this host is gone, is taken "
                                        "over")
    rows_per_shard: int = _opt(2000, "rows each write gathers before it writes its shards (and "
                                     "commits them to the ledger: what a killed run keeps)")


@dataclass
class PlanConfig:
    """``groundtrace plan`` only: how much of the input to sample, and what the plan cannot
    measure here (the GPUs' speed, a model's habits)."""

    sample: int = _opt(1000, "records to trace, about (a seeded sample spread over the input "
                             "files; three times as many go through the screen and the "
                             "filters; the whole input when it holds fewer)")
    sample_fraction: float | None = _opt(None, "share of the input's records to trace instead "
                                               "of --sample (0 to 1)")
    cpus: int | None = _opt(None, "CPUs the run will have, for its wall clock (default: this "
                                  "machine's)")
    gpus: int | None = _opt(None, "GPUs the run will have (default: --replicas x "
                                  "--tensor-parallel-size x --pipeline-parallel-size with "
                                  "--model, else 0)")
    gpu_tokens_per_s: float | None = _opt(None, "output tokens a second one GPU generates for "
                                                "this model (default: the figure "
                                                "bench/translate_throughput.py --device gpu "
                                                "recorded in bench/records/, if any)")
    expect_output_tokens: int | None = _opt(None, "tokens a translation usually takes with "
                                                  "this model (default: only the bounds: the "
                                                  "renderer's length and --max-tokens)")
    expect_pass_rate: float | None = _opt(None, "share of an LLM's translations expected to "
                                                "pass verification, for the examples expected "
                                                "(the renderer's is measured)")

    def validate(self) -> None:
        if self.sample < 1:
            raise ValueError("--sample must be 1 or more")
        if self.sample_fraction is not None and not 0 < self.sample_fraction <= 1:
            raise ValueError("--sample-fraction must be above 0 and at most 1")
        if self.expect_pass_rate is not None and not 0 <= self.expect_pass_rate <= 1:
            raise ValueError("--expect-pass-rate must be between 0 and 1")
        for name in ("cpus", "gpu_tokens_per_s", "expect_output_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be above 0")
        if self.gpus is not None and self.gpus < 0:
            raise ValueError("--gpus must be 0 or more")


@dataclass
class JobConfig:
    input: str = _opt("data/sample.jsonl", "JSONL (.gz/.zst) or Parquet file, folder (every "
                                           "input file under it) or glob (quoted: `*` stays in "
                                           "one folder, `**` crosses folders: 'in/**/*.jsonl'); "
                                           "local path or s3:// gs:// https:// URL")
    output: str = _opt("out", "output folder, local or s3:// gs://")
    overwrite: bool = _opt(False, "replace a finished run in the output folder (an unfinished "
                                  "run of the same job and settings is resumed instead)")
    fresh: bool = _opt(False, "start over even when the output folder holds an unfinished run "
                              "that could be resumed")
    trace: TraceConfig = field(default_factory=TraceConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)

    def to_dict(self) -> dict:
        """The settings as written down (manifest, resume key): an endpoint by scheme and host
        only (a URL may carry a token in its path or query)."""
        data = dataclasses.asdict(self)
        del data["plan"]  # groundtrace plan's own: a run's settings do not hold it
        if self.translate.endpoint:
            data["translate"]["endpoint"] = public_endpoint(self.translate.endpoint)
        return data

    def validate(self, engine: bool = True) -> None:
        """Raise ValueError for settings that cannot work, before anything starts (``engine``:
        the engine's too, which reads the model's config: a plan does without it)."""
        self.screen.settings(self.trace.raw_filter())
        self.build.settings()
        self.translate.steps_checked_for()
        self.plan.validate()
        tasks = self.translate.task_settings(self.trace.seed).tasks
        needs_llm = [task for task in tasks if task in NEEDS_LLM]
        if needs_llm and not self.translate.uses_llm():
            raise ValueError(f"--tasks {','.join(needs_llm)} needs an LLM (--model): the renderer "
                             "cannot propose inputs or programs")
        if self.translate.endpoint:
            self.translate.uses_llm()
            self.translate.endpoint_settings(self.trace.seed)
        elif self.translate.uses_llm():
            self.translate.device_check()
            if engine:
                self.translate.llm(self.trace.seed)


SECTIONS = {"trace": TraceConfig, "screen": ScreenConfig, "translate": TranslateConfig, "build": BuildConfig,
            "ray": RayConfig, "plan": PlanConfig}


def load_file(path: str | Path) -> dict:
    text = Path(path).read_text()
    if str(path).endswith(".toml"):
        return tomllib.loads(text)
    return yaml.safe_load(text) or {}


def from_dict(data: dict) -> JobConfig:
    unknown = set(data) - {f.name for f in dataclasses.fields(JobConfig)}
    if unknown:
        raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    top = {k: v for k, v in data.items() if k not in SECTIONS}
    sections = {}
    for name, cls in SECTIONS.items():
        values = data.get(name) or {}
        bad = set(values) - {f.name for f in dataclasses.fields(cls)}
        if bad:
            raise ValueError(f"unknown keys in [{name}]: {', '.join(sorted(bad))}")
        sections[name] = cls(**values)
    return JobConfig(**top, **sections)


def _flag_fields() -> list[tuple[str | None, dataclasses.Field, Any]]:
    out = []
    hints = get_type_hints(JobConfig)
    for f in dataclasses.fields(JobConfig):
        if f.name in SECTIONS:
            section_hints = get_type_hints(SECTIONS[f.name])
            out += [(f.name, sf, section_hints[sf.name]) for sf in dataclasses.fields(SECTIONS[f.name])]
        else:
            out.append((None, f, hints[f.name]))
    return out


def add_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...] = tuple(SECTIONS)) -> None:
    """One --flag per config field; unset flags stay None so files and defaults show through."""
    parser.add_argument("--config", help="YAML or TOML file with the settings below, in sections")
    for section, f, hint in _flag_fields():
        if section is not None and section not in sections:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif getattr(hint, "__origin__", None) is list:
            parser.add_argument(flag, action="append", default=None, help=help_text)
        else:
            kind = next((t for t in (int, float, str) if t in _types(hint)), str)
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def _types(hint: Any) -> tuple:
    return getattr(hint, "__args__", (hint,))


def from_args(args: argparse.Namespace) -> JobConfig:
    data: dict = load_file(args.config) if getattr(args, "config", None) else {}
    for section, f, _ in _flag_fields():
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if section is None:
            data[f.name] = value
        else:
            data.setdefault(section, {})[f.name] = value
    return from_dict(data)
