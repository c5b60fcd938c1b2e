"""Benchmark end-to-end `cactus predict` against the plain pipeline on the same sets (issue 11).

Sets of 12 product titles are drawn from ``../shared/data/amazon_toys_dev`` (with a fixed seed) and written as JSONL.
Each variant runs in a fresh process (so its peak RSS is its own) on the same file, end to end from file to file:

* ``sia-stream``: the library's streaming predict (reader / encoder / writer pipeline, token-budget batches) with
  the packaged MiniLM in SIA mode;
* ``plain``: what one would write without cactus: the same backbone through ``transformers`` without inter-entity
  attention, entities of 64 sets per forward padded to the batch's longest, mean pooling, then SciPy average link
  per set, reading and writing the same files line by line;
* ``sia-ray2`` (with ``--ray``): ``cactus predict --engine ray`` with two CPU actors (one torch thread each) on a
  local Ray started in the process (its start-up counted), the same MiniLM saved as a model folder; its peak
  RSS is the driver's only (the actors are other processes).

Rows (JSON, one per variant and size): sets, seconds, sets/s, peak RSS (MiB); then per size the SIA / plain ratio,
and across sizes the peak memory of the largest size against the size ten times smaller.

    python bench/predict.py --sizes 1000,10000,100000
    python bench/predict.py --sizes 10000,100000 --plain-up-to 10000
    python bench/predict.py --sizes 1000 --ray
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "amazon_toys_dev" / "entities.jsonl"
THRESHOLD = 0.5


def write_sets(path: Path, count: int, size: int = 12, seed: int = 0, data: Path = DATA) -> None:
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()]
    rng = random.Random(seed)
    with path.open("w") as handle:
        for i in range(count):
            chosen = rng.sample(texts, size)
            row = {"id": f"s{i}", "entities": [{"id": str(j), "text": t} for j, t in enumerate(chosen)]}
            handle.write(json.dumps(row) + "\n")


def run_sia(sets: Path, out: Path) -> int:
    from cactus.data.partial_output import PartialOutput
    from cactus.data.set_files import iter_sets
    from cactus.encoders import EncoderConfig, SetEncoder
    from cactus.inference.streaming import StreamOptions, predict_stream

    encoder = SetEncoder(EncoderConfig(backbone="minilm", mode="sia"))
    output = PartialOutput(out)
    predict_stream(encoder, iter_sets(sets), output.write, StreamOptions(threshold=THRESHOLD), progress=lambda n:
                   output.flush())
    return output.finish()


def save_model(folder: Path) -> Path:
    """The untrained MiniLM (SIA) saved as a model folder, for the Ray engine, which loads models by folder."""
    from cactus.encoders import EncoderConfig, SetEncoder
    from cactus.training.checkpoint import ModelCard, save_backbone, write_card

    if (folder / "card.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    encoder = SetEncoder(EncoderConfig(backbone="minilm", mode="sia"))
    save_backbone(encoder, folder / "backbone")
    write_card(folder, ModelCard(backbone="minilm", mode="sia", loss="aug_triplet",
                                 max_tokens=encoder.config.max_tokens, threshold=THRESHOLD))
    return folder


def run_ray(sets: Path, out: Path, actors: int = 2) -> int:
    import ray

    from cactus.inference.ray_engine import RayRun, predict_ray

    model = save_model(out.parent / "minilm-sia-model")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        return predict_ray(RayRun(model=model, sets=str(sets), out=out, threshold=THRESHOLD, actors=actors))
    finally:
        ray.shutdown()


def run_plain(sets: Path, out: Path, batch_sets: int = 64) -> int:
    import numpy as np
    import torch
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from transformers import AutoModel, AutoTokenizer

    from cactus.encoders.backbones import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = AutoModel.from_pretrained(minilm_path()).eval()
    count = 0

    def flush(rows: list[dict], handle) -> None:
        texts = [e["text"] for r in rows for e in r["entities"]]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
        start = 0
        for r in rows:
            e = emb[start:start + len(r["entities"])]
            start += len(r["entities"])
            dist = np.clip(1.0 - e @ e.T, 0.0, 2.0)
            np.fill_diagonal(dist, 0.0)
            labels = fcluster(linkage(squareform(dist, checks=False), "average"), 1.0 - THRESHOLD, "distance")
            clusters: dict[int, list[int]] = {}
            for i, label in enumerate(labels.tolist()):
                clusters.setdefault(label, []).append(i)
            handle.write(json.dumps({**r, "clusters": list(clusters.values())}) + "\n")

    with sets.open() as source, out.open("w") as handle:
        rows: list[dict] = []
        for line in source:
            rows.append(json.loads(line))
            if len(rows) == batch_sets:
                flush(rows, handle)
                count += len(rows)
                rows = []
        if rows:
            flush(rows, handle)
            count += len(rows)
    return count


def child(variant: str, sets: Path, out: Path) -> None:
    if variant == "sia-ray2":
        save_model(out.parent / "minilm-sia-model")  # not timed: a model folder exists before a real run
    start = time.perf_counter()
    count = {"sia-stream": run_sia, "plain": run_plain, "sia-ray2": run_ray}[variant](sets, out)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "sets": count, "seconds": round(seconds, 2),
                      "sets_per_s": round(count / seconds, 2), "peak_rss_mib": round(peak, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--data", type=Path, default=DATA, help="entities file the sets are drawn from")
    parser.add_argument("--ray", action="store_true", help="also run --engine ray with two local CPU actors")
    parser.add_argument("--plain-up-to", type=int, default=None, metavar="SETS",
                        help="run the plain pipeline only at sizes up to SETS (it is the slow side; its ratio "
                             "is settled at the smaller sizes)")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "SETS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    rows: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            sets = Path(tmp) / f"sets-{size}.jsonl"
            write_sets(sets, size, data=args.data)
            with_plain = args.plain_up_to is None or size <= args.plain_up_to
            for variant in (*(["plain"] if with_plain else []), "sia-stream", *(["sia-ray2"] if args.ray else [])):
                done = subprocess.run([sys.executable, __file__, "--child", variant, str(sets),
                                       str(Path(tmp) / f"{variant}-{size}.jsonl")],
                                      capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1]) | machine
                rows[(variant, size)] = row
                print(json.dumps(row), flush=True)
            if with_plain:
                print(json.dumps({"sets": size, "sia_vs_plain_sets_per_s": round(
                    rows[("sia-stream", size)]["sets_per_s"] / rows[("plain", size)]["sets_per_s"], 3)}), flush=True)
            if args.ray:
                print(json.dumps({"sets": size, "ray2_vs_one_process_sets_per_s": round(
                    rows[("sia-ray2", size)]["sets_per_s"] / rows[("sia-stream", size)]["sets_per_s"], 3)}),
                    flush=True)
    sizes = sorted({s for _, s in rows})
    for small, large in pairwise(sizes):
        print(json.dumps({"sia_peak_rss_ratio": f"{large} vs {small} sets", "ratio": round(
            rows[("sia-stream", large)]["peak_rss_mib"] / rows[("sia-stream", small)]["peak_rss_mib"], 3)}))


if __name__ == "__main__":
    main()
