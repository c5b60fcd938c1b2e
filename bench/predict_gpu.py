"""GPU end to end: `predict`'s streaming path against a plain batched forward of the same entities (issue 11).

For each backbone (the packaged MiniLM; a random-weight T5 of Flan-T5-base shape, fed MiniLM's tokenizer since
only the ids' count matters for speed), on the same sets of ``--entities`` demo product titles, in one process:

* ``plain``: what a plain embedding job does: tokenize ``--plain-batch`` entities at a time (padded to the
  batch's longest), one backbone forward under bf16 autocast, mean pooling, normalize; no inter-entity attention,
  no clustering;
* ``predict-graphs``: :func:`cactus.inference.streaming.predict_stream` as ``cactus predict`` runs it (reader,
  token-budget batches, CUDA graphs over bucketed shapes, bf16, average link per set, in input order), after one
  untimed warm-up pass over ``--warmup`` sets (the graph captures);
* ``predict-eager``: the same with graphs off.

Rows (JSON): backbone, variant, sets, seconds, sets/s; then per backbone the ratios predict-graphs / plain (the
target is at least 0.8) and predict-graphs / predict-eager.

    python bench/predict_gpu.py                                   # on a GPU
    python bench/predict_gpu.py --device cpu --sets 200 --warmup 20 --backbones minilm   # dry run
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.encoders import build_encoder  # noqa: E402
from cactus.data import Entity, EntitySet, read_dataset  # noqa: E402
from cactus.demo import TOYS  # noqa: E402


def demo_sets(count: int, size: int, seed: int = 0) -> list[EntitySet]:
    """``count`` sets of ``size`` titles drawn from every split of the bundled demo (in the repository)."""
    data = read_dataset(TOYS)
    texts = sorted({e.text for split in (data.train, data.val, data.test) for s in split for e in s.entities})
    rng = random.Random(seed)
    return [EntitySet(f"s{i}", [Entity(str(j), t) for j, t in enumerate(rng.sample(texts, size))])
            for i in range(count)]


def encoder_for(backbone: str, device: str):
    encoder = build_encoder(backbone)
    if backbone == "t5-base-random":
        encoder.tokenizer = build_encoder("minilm").tokenizer
    return encoder.to(device).eval()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_plain(encoder, sets: list[EntitySet], device: str, batch: int, dtype: torch.dtype | None) -> None:
    texts = [e.text for s in sets for e in s.entities]
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype or torch.float32,
                                                enabled=dtype is not None):
        for start in range(0, len(texts), batch):
            enc = encoder.tokenizer(texts[start:start + batch], padding=True, truncation=True, max_length=64,
                                    return_tensors="pt").to(device)
            hidden = encoder.backbone(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.last_hidden_state.dtype)
            pooled = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1)
            torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()


def run_predict(encoder, sets: list[EntitySet], graphs: bool) -> int:
    import cactus.inference.graphs as graph_module
    from cactus.inference.streaming import StreamOptions, predict_stream

    original = graph_module.EncoderForward

    class Forward(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:  # graphs on: the library's default (on CUDA)
            super().__init__(*args, **{**kwargs, "graphs": None if graphs else False})

    graph_module.EncoderForward = Forward
    try:
        return predict_stream(encoder, iter(sets), lambda s: None, StreamOptions(threshold=0.5))
    finally:
        graph_module.EncoderForward = original


def run_variant(variant: str, encoder, sets: list[EntitySet], args: argparse.Namespace,
                dtype: torch.dtype | None) -> None:
    """Run one variant over ``sets`` and wait for the device."""
    if variant == "plain":
        run_plain(encoder, sets, args.device, args.plain_batch, dtype)
    else:
        run_predict(encoder, sets, graphs=variant == "predict-graphs")
    synchronize(args.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backbones", default="minilm,t5-base-random")
    parser.add_argument("--sets", type=int, default=20_000)
    parser.add_argument("--entities", type=int, default=12, help="entities per set")
    parser.add_argument("--warmup", type=int, default=2_000, help="sets of the untimed warm-up pass")
    parser.add_argument("--plain-batch", type=int, default=1024, help="entities per plain forward")
    args = parser.parse_args()
    sets = demo_sets(args.sets, args.entities)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else None
    machine = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor(),
               "torch": torch.__version__, "sets": len(sets), "entities_per_set": args.entities}
    print(json.dumps(machine), flush=True)
    for backbone in args.backbones.split(","):
        encoder = encoder_for(backbone, args.device)
        seconds: dict[str, float] = {}
        for variant in ("plain", "predict-graphs", "predict-eager"):
            run_variant(variant, encoder, sets[: args.warmup], args, dtype)  # untimed: graph captures, warm-up
            start = time.perf_counter()
            run_variant(variant, encoder, sets, args, dtype)
            seconds[variant] = time.perf_counter() - start
            print(json.dumps({"backbone": backbone, "variant": variant, "sets": len(sets),
                              "seconds": round(seconds[variant], 2),
                              "sets_per_s": round(len(sets) / seconds[variant], 1)}), flush=True)
        print(json.dumps({"backbone": backbone,
                          "predict_graphs_vs_plain": round(seconds["plain"] / seconds["predict-graphs"], 3),
                          "graphs_vs_eager": round(seconds["predict-eager"] / seconds["predict-graphs"], 3)}),
              flush=True)
        del encoder
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
