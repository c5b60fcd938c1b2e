"""Benchmark the set encoders: sets/s and peak memory of NIA, SIA, FIA and the slow reference (issue 3, item 5).

Every configuration (mode, entities x tokens, batch, inference or training step) runs on synthetic sets of
random token ids, each entity exactly ``tokens`` long including special tokens, packed once before timing.

* sets/s = batch / seconds per timed iteration (after warm-up iterations); tokenization excluded. The seconds
  are the median on CUDA and the minimum on CPU, where other processes of a shared machine only ever add time
  (the minimum is the usual estimate there, as in ``timeit``); ``--stat`` overrides.
* A training step is forward, a similarity loss, backward and an AdamW step, in train mode (dropout on).
* Peak memory on CUDA: ``torch.cuda.max_memory_allocated`` (weights and optimizer state included). On CPU: the
  peak RSS of a fresh process per configuration (forked from this one before torch runs anything) minus that
  process's RSS once the model, optimizer and batch exist; Linux ``/proc/self/clear_refs`` resets the peak.
* On CPU the modes of one shape and phase are then timed together in one more process, one iteration of each in
  turn, so that load from other processes on a shared machine falls on all of them alike. On CUDA each
  configuration runs in this process, one after the other.
* ``--dtype bf16`` runs under ``torch.autocast`` with float32 weights, as training does.

Rows go to ``--out`` as JSON lines with the keys mode, backbone, device, dtype, entities, tokens, batch, train,
sets_per_s and peak_mib (``null`` and an extra ``error`` key when a configuration fails, e.g. out of memory).

Modes take suffixes: ``+graph`` (CUDA inference replayed from a CUDA graph) and ``+explicit`` (training steps of
an SIA mode on its older path, which materialises the scores; the default is the fused path).

Examples:
    python bench/encoders.py --quick --out bench-encoders-cpu.jsonl
    python bench/encoders.py --backbone t5-base-random --device cuda --dtype bf16 --modes nia,sia,fia \\
        --shapes 5x16,46x8,128x16,512x16 --out gpu.jsonl
    python bench/encoders.py --backbone t5-base-random --device cuda --dtype bf16 --phase train \\
        --modes nia,sia,sia+explicit --shapes 5x16,46x8,128x16,512x16 --out gpu-train.jsonl
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import transformers

from cactus.encoders import EncoderConfig, SetEncoder
from cactus.encoders.attention import sia_training_path
from cactus.encoders.config import ATTENTION_MODES
from cactus.encoders.packing import pack
from cactus.encoders.reference import reference_forward_ids
from cactus.inference.graphs import capture_graph

MODES = (*ATTENTION_MODES, "reference")
# "MODE+graph" (CUDA, inference): the same forward captured once in a CUDA graph and replayed, which removes
# the per-kernel launch cost of eager PyTorch (cactus.inference.graphs.capture_graph, which prediction on CUDA
# replays over bucketed shapes); SetEncoder.embed() and training run eagerly.
# "MODE+explicit" (training, SIA modes): the older training path that materialises the attention scores
# (cactus.encoders.attention.sia_training_path), to compare with the default fused path in one run.
SUFFIXES = ("graph", "explicit")
DEFAULT_SHAPES = "5x8,5x16,46x8,46x16,128x8,128x16,512x8,512x16"

# The published implementation on an H200, bf16, random-weight Flan-T5-base, batch 16 (4 at 512 entities):
# sets/s by (mode, entities, tokens, train). Sources: issue 3 and shared/STACK.md; None = out of memory.
PUBLISHED = {
    ("sia", 5, 16, False): 1173, ("sia", 5, 16, True): 375,
    ("nia", 46, 8, False): 1246, ("sia", 46, 8, False): 914, ("fia", 46, 8, False): 1097,
    ("nia", 46, 8, True): 426, ("sia", 46, 8, True): 312, ("fia", 46, 8, True): 384,
    ("nia", 128, 16, False): 347, ("sia", 128, 16, False): 195, ("fia", 128, 16, False): 64,
    ("nia", 128, 16, True): 123, ("sia", 128, 16, True): 84, ("fia", 128, 16, True): 32,
    ("nia", 512, 16, False): 86, ("sia", 512, 16, False): 22, ("fia", 512, 16, False): 4.0,
    ("nia", 512, 16, True): 31, ("sia", 512, 16, True): 10, ("fia", 512, 16, True): None,
}  # fmt: skip


# --------------------------------------------------------------------------- model and data
def build_encoder(backbone: str) -> SetEncoder:
    """The packaged MiniLM, a local folder, or a random-weight T5 of Flan-T5-base shape."""
    if backbone != "t5-base-random":
        return SetEncoder(EncoderConfig(backbone=backbone))
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    config = T5Config(
        vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
        feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128,
        dropout_rate=0.1, is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = T5EncoderModel(config).eval()
    tokenizer = T5Tokenizer(extra_ids=0)  # only its pad and eos ids are used: the benchmark feeds ids
    return SetEncoder(EncoderConfig(backbone=backbone, max_tokens=512), model=model, tokenizer=tokenizer)


def synthetic_sets(encoder: SetEncoder, batch: int, entities: int, tokens: int) -> list[list[list[int]]]:
    """``batch`` sets of ``entities`` entities of exactly ``tokens`` ids (the tokenizer's special tokens kept)."""
    tokenizer = encoder.tokenizer
    specials = tokenizer("")["input_ids"]
    prefix = specials[:1] if specials and specials[0] == tokenizer.cls_token_id else []
    suffix = specials[len(prefix) :]
    middle = tokens - len(prefix) - len(suffix)
    if middle < 1:
        raise ValueError(f"tokens={tokens} leaves no room between the special tokens {specials}")
    vocab = encoder.backbone.config.vocab_size
    generator = torch.Generator().manual_seed(entities * 1000 + tokens)
    ids = torch.randint(min(1000, vocab // 4), vocab - 200, (batch, entities, middle), generator=generator)
    return [[prefix + row + suffix for row in entity_rows] for entity_rows in ids.tolist()]


# --------------------------------------------------------------------------- one configuration
def rss_kib(field: str = "VmRSS") -> int | None:
    """This process's current (VmRSS) or peak (VmHWM) resident set, in KiB; None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def base_row(spec: dict, args: argparse.Namespace) -> dict:
    """A configuration's JSON row, before measuring."""
    return {
        "mode": spec["mode"], "backbone": args.backbone, "device": args.device, "dtype": args.dtype,
        "entities": spec["entities"], "tokens": spec["tokens"], "batch": spec["batch"], "train": spec["train"],
        "sets_per_s": None, "peak_mib": None,
    }  # fmt: skip


def prepare_step(encoder: SetEncoder, spec: dict, args: argparse.Namespace):
    """Synthetic batch, optimizer (training) and a ``step()`` that runs one inference or training step."""
    label, entities, tokens, batch_size, train = (
        spec["mode"], spec["entities"], spec["tokens"], spec["batch"], spec["train"],
    )  # fmt: skip
    mode, *suffixes = label.split("+")
    graph = "graph" in suffixes
    path = "explicit" if "explicit" in suffixes else "fused"
    device = torch.device(args.device)
    token_ids = synthetic_sets(encoder, batch_size, entities, tokens)
    if mode == "reference":
        batch = None
    else:
        batch = pack(token_ids, layout=ATTENTION_MODES[mode].layout, pad_id=encoder.tokenizer.pad_token_id,
                     position_offset=encoder.info.position_offset).to(device)  # fmt: skip
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-6) if train else None
    # Autocast's weight-cast cache must be off inside a CUDA graph capture.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16", cache_enabled=not graph)

    def forward():
        if mode == "reference":
            return reference_forward_ids(encoder, token_ids, "sia")
        return encoder(batch, mode)

    def step() -> None:
        encoder.train(train)
        if not train:
            with torch.no_grad(), autocast:
                forward()
            return
        with sia_training_path(path), autocast:
            embeddings, _ = forward()
            similarity = embeddings @ embeddings.transpose(1, 2)  # (B, N, N)
            loss = similarity.float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if graph:
        if train:
            raise ValueError("CUDA graphs are benchmarked for inference only")
        encoder.train(train)
        step = capture_graph(step)  # the library's capture, as prediction uses it
    return step


def summarise(times: list[float], batch_size: int, args: argparse.Namespace) -> float:
    """sets/s from per-iteration seconds: median (CUDA) or minimum (CPU), see the module docstring."""
    seconds = statistics.median(times) if args.stat == "median" else min(times)
    return round(batch_size / seconds, 3)


def run_config(encoder: SetEncoder, spec: dict, args: argparse.Namespace) -> dict:
    """CUDA: time one configuration on an already built encoder, with its peak allocated memory."""
    row = base_row(spec, args)
    step = prepare_step(encoder, spec, args)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    deadline = time.perf_counter() + args.config_seconds
    warm_until = time.perf_counter() + args.warmup_time  # also lets GPU clocks ramp up from idle
    done = 0
    while done < args.warmup or time.perf_counter() < warm_until:
        step()
        done += 1
        if done >= args.warmup:
            torch.cuda.synchronize()
    times: list[float] = []
    while len(times) < args.min_iters or (sum(times) < args.min_time and len(times) < args.max_iters):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    row["sets_per_s"] = summarise(times, spec["batch"], args)
    row["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    encoder.zero_grad(set_to_none=True)
    return row


def error_row(spec: dict, args: argparse.Namespace, message: str) -> dict:
    """The row of a configuration that failed."""
    return {**base_row(spec, args), "error": message}


def group_by_shape(specs: list[dict]) -> list[list[dict]]:
    """Consecutive configurations of equal shape, batch and phase."""
    groups: list[list[dict]] = []
    for spec in specs:
        key = (spec["entities"], spec["tokens"], spec["batch"], spec["train"])
        if groups and (groups[-1][0]["entities"], groups[-1][0]["tokens"], groups[-1][0]["batch"],
                       groups[-1][0]["train"]) == key:  # fmt: skip
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def _memory_worker(spec: dict, args: argparse.Namespace, queue) -> None:
    """CPU, in a fresh (forked) process: peak RSS during one step, minus the RSS once all is built."""
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        encoder = build_encoder(args.backbone)
        step = prepare_step(encoder, spec, args)
        if not reset_peak_rss():
            queue.put(None)
            return
        baseline = rss_kib()
        step()
        queue.put(round((rss_kib("VmHWM") - baseline) / 1024, 1))
    except Exception as exc:  # report any failure as the row's error, keep the benchmark going
        queue.put(f"{type(exc).__name__}: {exc}"[:300])


def _timing_worker(specs: list[dict], args: argparse.Namespace, queue) -> None:
    """CPU: time the modes of one shape and phase in one process, interleaved iteration by iteration, so that
    load from other processes on a shared machine falls on all of them alike."""
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        encoder = build_encoder(args.backbone)
        steps = [prepare_step(encoder, spec, args) for spec in specs]
        for _ in range(args.warmup):
            for step in steps:
                step()
        times: list[list[float]] = [[] for _ in specs]
        deadline = time.perf_counter() + args.config_seconds * len(specs)
        while True:
            for step, spent in zip(steps, times, strict=True):
                start = time.perf_counter()
                step()
                spent.append(time.perf_counter() - start)
            enough = all(len(t) >= args.min_iters and (sum(t) >= args.min_time or len(t) >= args.max_iters)
                         for t in times)  # fmt: skip
            if enough or time.perf_counter() > deadline:
                break
        queue.put([summarise(t, spec["batch"], args) for t, spec in zip(times, specs, strict=True)])
    except Exception as exc:
        queue.put(f"{type(exc).__name__}: {exc}"[:300])


def _fork(target, *arguments, timeout: float):
    """Run ``target(*arguments, queue)`` in a forked process; its answer, or an error string."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(*arguments, queue))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        return f"timed out after {timeout:.0f} s"
    if queue.empty():
        return f"worker died (exit code {process.exitcode}; out of memory?)"
    return queue.get()


def run_cpu_group(specs: list[dict], args: argparse.Namespace) -> list[dict]:
    """CPU rows of one shape and phase: memory per configuration (fresh processes), then interleaved timing."""
    rows = [base_row(spec, args) for spec in specs]
    for spec, row in zip(specs, rows, strict=True):
        peak = _fork(_memory_worker, spec, args, timeout=args.config_seconds + 120)
        if isinstance(peak, str):
            row["error"] = peak
        else:
            row["peak_mib"] = peak
    alive = [i for i, row in enumerate(rows) if "error" not in row]
    if alive:
        speeds = _fork(_timing_worker, [specs[i] for i in alive], args, timeout=(args.config_seconds + 60) * len(alive))
        for n, i in enumerate(alive):
            if isinstance(speeds, str):
                rows[i]["error"] = speeds
            else:
                rows[i]["sets_per_s"] = speeds[n]
    return rows


# --------------------------------------------------------------------------- driver
def configurations(args: argparse.Namespace) -> list[dict]:
    def parse(shapes: str) -> list[tuple[int, int]]:
        return [tuple(int(x) for x in s.split("x")) for s in shapes.split(",")]

    phases = {"infer": [False], "train": [True], "both": [False, True]}[args.phase]
    specs = []
    for train in phases:
        modes = args.train_modes if train and args.train_modes else args.modes
        for entities, tokens in parse(args.train_shapes if train and args.train_shapes else args.shapes):
            batch = args.batch or (4 if entities >= 512 else 16)
            for mode in modes.split(","):
                base, *suffixes = mode.split("+")
                if base not in MODES or not set(suffixes) <= set(SUFFIXES):
                    raise SystemExit(
                        f"unknown mode {mode!r}; choose from {', '.join(MODES)} (+graph on CUDA, +explicit)"
                    )
                if ("graph" in suffixes and train) or ("explicit" in suffixes and not train):
                    continue  # CUDA graphs: inference only; +explicit changes training only
                specs.append({"mode": mode, "entities": entities, "tokens": tokens, "batch": batch, "train": train})
    return specs


def environment(args: argparse.Namespace) -> dict:
    info = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
    }  # fmt: skip
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def table(rows: list[dict]) -> str:
    """Markdown table: sets/s, peak MiB, ratio to NIA of the same shape and phase, published figure if any."""
    nia = {(r["entities"], r["tokens"], r["train"]): r["sets_per_s"] for r in rows if r["mode"] == "nia"}
    nia_mem = {(r["entities"], r["tokens"], r["train"]): r["peak_mib"] for r in rows if r["mode"] == "nia"}
    graph_nia = {(r["entities"], r["tokens"], r["train"]): r["sets_per_s"] for r in rows if r["mode"] == "nia+graph"}
    lines = [
        "| phase | entities x tokens | batch | mode | sets/s | peak MiB | vs NIA sets/s | vs NIA memory | published |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        key = (r["entities"], r["tokens"], r["train"])
        speed = "error: " + r["error"][:60] if r.get("error") else f"{r['sets_per_s']:.1f}"
        memory = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        ratio = memory_ratio = ""
        base = nia if not r["mode"].endswith("+graph") else graph_nia
        if r["sets_per_s"] and base.get(key):
            ratio = f"{r['sets_per_s'] / base[key]:.2f}x"
        if r["peak_mib"] and nia_mem.get(key):
            memory_ratio = f"{r['peak_mib'] / nia_mem[key]:.2f}x"
        published = ""
        pub_key = (r["mode"].removesuffix("+explicit"), r["entities"], r["tokens"], r["train"])
        if r["backbone"] == "t5-base-random" and r["device"] == "cuda" and pub_key in PUBLISHED:
            pub = PUBLISHED[pub_key]
            if pub is None:
                published = "OOM"
            else:
                published = f"{pub} ({r['sets_per_s'] / pub:.2f}x)" if r["sets_per_s"] else f"{pub}"
        phase = "train" if r["train"] else "infer"
        lines.append(
            f"| {phase} | {r['entities']}x{r['tokens']} | {r['batch']} | {r['mode']} | {speed} | {memory} | "
            f"{ratio} | {memory_ratio} | {published} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="minilm", help="minilm, t5-base-random, or a checkpoint folder")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16 = autocast, fp32 weights")
    parser.add_argument("--modes", default="nia,sia,fia,reference", help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma list of ENTITIESxTOKENS")
    parser.add_argument("--phase", default="both", choices=["infer", "train", "both"])
    parser.add_argument("--train-shapes", default="", help="shapes of the training steps (default: --shapes)")
    parser.add_argument("--train-modes", default="", help="modes of the training steps (default: --modes)")
    parser.add_argument(
        "--stat", choices=["median", "min"], help="per-iteration statistic (default median CUDA, min CPU)"
    )
    parser.add_argument("--batch", type=int, default=0, help="sets per batch (default 16, 4 at 512 entities)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 1 CPU, 3 CUDA)")
    parser.add_argument("--warmup-time", type=float, default=None, help="warm up at least this long (1 s CUDA)")
    parser.add_argument("--min-iters", type=int, default=2)
    parser.add_argument("--max-iters", type=int, default=30)
    parser.add_argument("--min-time", type=float, default=None, help="seconds of timed iterations (default 3/2)")
    parser.add_argument("--config-seconds", type=float, default=120, help="stop timing one configuration after")
    parser.add_argument("--budget", type=float, default=0, help="skip configurations after this many seconds")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    parser.add_argument(
        "--quick", action="store_true",
        help="CPU, MiniLM, NIA/SIA/FIA: inference at 5x16 and 46x16, training step at 5x16 (under 3 min)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write JSON lines here")
    args = parser.parse_args(argv)
    if args.quick:
        args.backbone, args.device, args.modes = "minilm", "cpu", "nia,sia,fia"
        args.shapes, args.train_shapes, args.phase = "5x16,46x16", "5x16", "both"
        args.min_time = args.min_time or 1.0
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
    args.warmup = args.warmup if args.warmup is not None else (3 if args.device == "cuda" else 1)
    if args.warmup_time is None:
        args.warmup_time = 1.0 if args.device == "cuda" else 0.0
    args.min_time = args.min_time if args.min_time is not None else (2.0 if args.device == "cuda" else 3.0)
    args.stat = args.stat or ("median" if args.device == "cuda" else "min")

    started = time.perf_counter()
    print(json.dumps({"environment": environment(args), "args": {k: str(v) for k, v in vars(args).items()}}))
    encoder = build_encoder(args.backbone).to(args.device) if args.device == "cuda" else None
    rows: list[dict] = []
    specs = configurations(args)
    # CPU: the modes of one shape and phase are measured together (see _timing_worker).
    groups = [specs[i : i + 1] for i in range(len(specs))] if encoder is not None else group_by_shape(specs)
    for group in groups:
        if args.budget and time.perf_counter() - started > args.budget:
            new = [error_row(spec, args, "skipped: time budget spent") for spec in group]
        elif encoder is None:
            new = run_cpu_group(group, args)
        else:
            try:
                new = [run_config(encoder, group[0], args)]
            except torch.OutOfMemoryError:
                new = [error_row(group[0], args, "out of memory")]
            except Exception as exc:
                traceback.print_exc()
                new = [error_row(group[0], args, f"{type(exc).__name__}: {exc}"[:300])]
            encoder.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        for row in new:
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"\n{args.backbone} on {args.device} ({args.dtype}), {time.perf_counter() - started:.0f} s\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
