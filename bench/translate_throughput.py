"""Translate-stage throughput against bare vLLM on the same prompts.

    .venv/bin/python bench/translate_throughput.py                      # CPU, tiny model
    .venv/bin/python bench/translate_throughput.py --preset qwen3-8b --device gpu --prompts 512

Prompts are translation prompts of real traces (the dev set's, traced here by the trace
stage's own Tracer; data/sample.jsonl when ../shared is absent), with a fixed output length
(``ignore_eos``), so that both sides generate exactly the same number of tokens.

(a) bare ``vllm.LLM.generate`` on the prompts' token ids: output tokens/s over the generate
    call alone, and over engine start + generate;
(b) the pipeline's translate stage (``jobs.pipeline.add_translation``: prompt building and
    token counting, ray.data.llm's vLLM engine stage, verification) on the same traces, from
    the start of the Ray Data execution (engine start included) to the last row.

With ``--endpoint`` (a URL, or nothing: a vLLM OpenAI-compatible server started here with the
same model) the two sides are (a) a client that sends the job's own request bodies straight to
the server, ``--endpoint-concurrency`` at a time, and (b) the translate stage through the
endpoint translator (``translate.endpoint``) at the same concurrency:

    .venv/bin/python bench/translate_throughput.py --endpoint                 # CPU, tiny model
    .venv/bin/python bench/translate_throughput.py --endpoint http://host:8000/v1 --served-model M

The ratio with start compares (b) with (a) start-included (both pay for one engine start, but
(b) also starts a Ray actor that imports vLLM: a fixed cost that small runs cannot hide). The
marginal ratio compares the steady state: (b) runs twice, on half the traces and on all of
them, and the extra tokens over the extra time (fixed costs cancel) are set against (a)'s
generate call alone. No weights can be downloaded here: the model
is random (``load_format="dummy"`` for a preset; the tiny test model on CPU), and the prompts
are tokenized with the tiny model's tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESETS = {
    # Qwen3-8B's architecture (config.json of the released model); weights are random.
    "qwen3-8b": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096,
        "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
        "max_position_embeddings": 40960, "rope_theta": 1000000, "rms_norm_eps": 1e-6,
        "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "attention_bias": False, "bos_token_id": 151643, "eos_token_id": 151645,
    },
}


def make_model(folder: Path, preset: str | None) -> Path:
    from translate.tiny_model import build_tiny_model

    build_tiny_model(folder)
    if preset:  # the tiny tokenizer (ids < 2048 fit any vocabulary) under the preset's config
        (folder / "config.json").write_text(json.dumps(PRESETS[preset], indent=2))
        (folder / "model.safetensors").unlink()
    return folder


def collect_traces(count: int, dev: Path) -> list[dict]:
    from trace_workers.actor import Tracer, TraceStageConfig
    from trace_workers.raw_filter import RawFilterConfig, filter_program
    from trace_workers.records import ProgramWork, parse_record
    from trace_workers.stats import StageStats

    source = dev if dev.exists() else ROOT / "data" / "sample.jsonl"
    tracer, stats, traces = Tracer(TraceStageConfig()), StageStats(), []
    try:
        for number, line in enumerate(source.read_text().splitlines(), 1):
            parsed = parse_record(line, f"{source.name}:{number}")
            if hasattr(parsed, "reason"):
                continue
            for row in filter_program(parsed, RawFilterConfig(ios_per_program=2), stats):
                if row["kind"] == "program":
                    for out in tracer.trace_program(ProgramWork.from_payload(row["payload"]), stats):
                        if out["kind"] == "trace":
                            traces.append(json.loads(out["payload"]))
            if len(traces) >= count:
                break
    finally:
        tracer.close()
    while len(traces) < count:  # a short input: repeat its traces under new ids
        traces.append({**traces[len(traces) % max(1, len(traces))], "id": f"copy-{len(traces)}"})
    return traces[:count]


def bare_vllm(llm_cfg, prompts: list[list[int]]) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from translate.llm import engine_kwargs

    started = time.perf_counter()
    llm = LLM(model=llm_cfg.model, **engine_kwargs(llm_cfg))
    ready = time.perf_counter()
    params = [SamplingParams(**llm_cfg.sampling_params(str(i), llm_cfg.max_tokens))
              for i in range(len(prompts))]
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
    done = time.perf_counter()
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    del llm
    return {"engine_start_s": round(ready - started, 2), "generate_s": round(done - ready, 2),
            "output_tokens": tokens, "tok_s": round(tokens / (done - ready), 1),
            "tok_s_with_start": round(tokens / (done - started), 1)}


def pipeline(cfg, llm_cfg, traces: list[dict]) -> dict:
    import ray

    from jobs.pipeline import add_translation

    ds = ray.data.from_items([{"kind": "trace", "payload": json.dumps(t)} for t in traces])
    ds = add_translation(ds.repartition(max(1, len(traces) // cfg.translate.llm_batch_size)),
                         cfg, keep_traces=False, llm=llm_cfg)
    started = time.perf_counter()
    tokens = translated = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for kind, payload in zip(batch.column("kind").to_pylist(), batch.column("payload").to_pylist(),
                                 strict=True):
            if kind == "stats":
                stats = json.loads(payload)
                tokens += stats.get("details", {}).get("tokens", {}).get("generated", 0)
                translated += stats.get("kept", {}).get("translate", 0)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 2), "translated": translated, "output_tokens": tokens,
            "tok_s": round(tokens / wall, 1)}


def half_then_whole(cfg, llm_cfg, traces: list[dict]) -> dict:
    """The pipeline on half the traces, then on all (a local Ray of its own): the whole run's
    figures, with the marginal tokens/s of the second half (fixed costs cancel)."""
    import ray

    ray.init(num_cpus=(os.cpu_count() or 1) + 6, include_dashboard=False, configure_logging=False)
    try:
        half = pipeline(cfg, llm_cfg, traces[: len(traces) // 2])
        print("pipeline, half the prompts:", half, flush=True)
        piped = pipeline(cfg, llm_cfg, traces)
        print("pipeline:", piped, flush=True)
    finally:
        ray.shutdown()
    extra_s = piped["wall_s"] - half["wall_s"]
    piped["marginal_tok_s"] = (round((piped["output_tokens"] - half["output_tokens"]) / extra_s, 1)
                               if extra_s > 0 else None)
    return piped


def start_server(model: str, args) -> tuple[object, str]:
    """vLLM's OpenAI-compatible server with ``model`` on a free loopback port."""
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--served-model-name", "bench", "--dtype", "bfloat16", "--host", "127.0.0.1",
               "--port", str(port), "--max-model-len", str(args.max_model_len)]
    if args.device == "cpu":
        command.append("--enforce-eager")
    if args.preset:
        command += ["--load-format", "dummy"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the vLLM server did not start") from None
            time.sleep(1)


def direct(endpoint_cfg, traces: list[dict]) -> dict:
    """The job's own request bodies sent straight to the server, ``concurrency`` at a time."""
    import asyncio

    import aiohttp

    from translate.tasks import translation_prompt

    bodies = [json.dumps(endpoint_cfg.request(t["id"], translation_prompt(t))) for t in traces]
    headers = {"Content-Type": "application/json"}
    if endpoint_cfg.api_key():
        headers["Authorization"] = f"Bearer {endpoint_cfg.api_key()}"

    failed: list[str] = []

    async def run() -> int:
        queue = list(reversed(bodies))
        tokens = 0

        async def worker(session) -> None:
            nonlocal tokens
            while queue:
                body = queue.pop()
                async with session.post(endpoint_cfg.chat_url, data=body, headers=headers) as answer:
                    usage = (await answer.json()).get("usage")
                    if usage is None:
                        failed.append(str(answer.status))
                    else:
                        tokens += usage["completion_tokens"]

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            await asyncio.gather(*(worker(session) for _ in range(endpoint_cfg.policy.concurrency)))
        return tokens

    started = time.perf_counter()
    tokens = asyncio.run(run())
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 2), "output_tokens": tokens, "tok_s": round(tokens / wall, 1),
            "failed": len(failed)}


def endpoint_main(args, model: str) -> dict:
    """(a) a direct client and (b) the job's translate stage, against one server."""

    from jobs.config import JobConfig

    server, url = (None, args.endpoint) if args.endpoint != "local" else start_server(model, args)
    try:
        cfg = JobConfig()
        t = cfg.translate
        t.translator, t.endpoint = "llm", url
        t.model = args.served_model if args.endpoint != "local" else "bench"
        t.max_tokens, t.endpoint_concurrency = args.output_tokens, args.endpoint_concurrency
        t.endpoint_seed = args.device != "cpu"  # vLLM's CPU backend dies of per-request seeds
        # fixed output lengths, as on the engine side (a vLLM/SGLang extension)
        t.endpoint_body = json.dumps({"ignore_eos": True})
        endpoint_cfg = t.endpoint_settings(seed=0)
        print(f"tracing {args.prompts} programs for prompts ...", flush=True)
        traces = collect_traces(args.prompts, args.dev)
        if server is not None:  # the prompts that fit the server's context, as on the engine side
            from translate.llm import LLMSettings, prompt_token_ids

            tokenizer_cfg = LLMSettings(model=model)
            room = args.max_model_len - args.output_tokens
            traces = [tr for tr in traces if len(prompt_token_ids(tr, tokenizer_cfg)) <= room]
        direct(endpoint_cfg, traces)  # warm the server up (its first pass is much slower)
        first = direct(endpoint_cfg, traces)
        print("direct client:", first, flush=True)
        piped = half_then_whole(cfg, None, traces)
        second = direct(endpoint_cfg, traces)
        print("direct client again:", second, flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
    bare_tok_s = (first["tok_s"] + second["tok_s"]) / 2
    return {"endpoint": "local vLLM server" if server is not None else url, "device": args.device,
            "prompts": len(traces), "output_tokens_each": args.output_tokens,
            "concurrency": args.endpoint_concurrency, "direct": [first, second], "pipeline": piped,
            "ratio": round(piped["tok_s"] / bare_tok_s, 3),
            "ratio_marginal": (round(piped["marginal_tok_s"] / bare_tok_s, 3)
                               if piped["marginal_tok_s"] else None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a real architecture, random weights")
    parser.add_argument("--model", help="a model folder to use instead (its own tokenizer)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per engine batch (pipeline)")
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--endpoint", nargs="?", const="local",
                        help="through an OpenAI-compatible server: its URL, or none to start one here")
    parser.add_argument("--served-model", help="the model name the --endpoint URL serves")
    parser.add_argument("--endpoint-concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if args.endpoint:
        with tempfile.TemporaryDirectory() as folder:
            model = args.model or str(make_model(Path(folder) / "model", args.preset))
            result = endpoint_main(args, model)
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return


    from jobs.config import JobConfig
    from translate.llm import prompt_token_ids

    with tempfile.TemporaryDirectory() as folder:
        model = args.model or str(make_model(Path(folder) / "model", args.preset))
        cfg = JobConfig()
        t = cfg.translate
        t.translator, t.model, t.device = "llm", model, args.device
        t.max_model_len, t.max_tokens, t.min_new_tokens = args.max_model_len, args.output_tokens, 1
        t.llm_batch_size, t.dtype = args.batch_size, "bfloat16"
        t.enforce_eager = args.device == "cpu"
        t.load_format = "dummy" if args.preset else None
        llm_cfg = t.llm(seed=0)
        llm_cfg.ignore_eos = True

        print(f"tracing {args.prompts} programs for prompts ...", flush=True)
        traces = collect_traces(args.prompts, args.dev)
        room = args.max_model_len - args.output_tokens
        fitting = [(tr, ids) for tr in traces if len(ids := prompt_token_ids(tr, llm_cfg)) <= room]
        traces, prompts = [tr for tr, _ in fitting], [ids for _, ids in fitting]
        lengths = sorted(len(p) for p in prompts)
        print(f"{len(prompts)} prompts, {lengths[0]}..{lengths[-1]} tokens (median "
              f"{lengths[len(lengths) // 2]}), {args.output_tokens} output tokens each", flush=True)

        bare = bare_vllm(llm_cfg, prompts)
        print("bare vLLM:", bare, flush=True)

        piped = half_then_whole(cfg, llm_cfg, traces)

    result = {
        "device": args.device, "preset": args.preset, "prompts": len(prompts),
        "prompt_tokens_median": lengths[len(lengths) // 2], "output_tokens_each": args.output_tokens,
        "bare_vllm": bare, "pipeline": piped,
        "ratio_with_start": round(piped["tok_s"] / bare["tok_s_with_start"], 3),
        "ratio_marginal": (round(piped["marginal_tok_s"] / bare["tok_s"], 3)
                           if piped["marginal_tok_s"] else None),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.device == "gpu":
        record_gpu_figure(result, args)


def record_gpu_figure(result: dict, args) -> None:
    """The GPU figure, where ``groundtrace plan`` finds it for its GPU hours (jobs.plan.estimate:
    GPU_BENCH_RECORD): output tokens a second of one engine on one GPU."""
    import datetime

    from jobs.plan.estimate import GPU_BENCH_RECORD

    try:
        import torch

        gpu = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - the figure stands without the GPU's name
        gpu = None
    record = {**result, "gpu": gpu, "model": args.model, "date": datetime.date.today().isoformat(),
              "command": " ".join(sys.argv)}
    GPU_BENCH_RECORD.parent.mkdir(parents=True, exist_ok=True)
    GPU_BENCH_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded for groundtrace plan: {GPU_BENCH_RECORD}", flush=True)


if __name__ == "__main__":
    main()
