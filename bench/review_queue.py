"""Benchmark the review queue (issue 13): does correcting sets in queue order help the model sooner than random order?

A simulated analyst corrects ``--k`` sets of a pool (the dataset's training sets, their reference clustering being
the correction) per round; after every round the model is fine-tuned from the packaged MiniLM (SIA) on all the sets
corrected so far (``--epochs``, default 1) and scored on the test sets (mean ARI, the threshold chosen on the
validation sets). The two orders run in the same process on the same data:

* ``queue``: the pool's sets by review priority under the current model
  (:mod:`cactus.inference.review_priority`: the share of merges within 0.1 of the threshold, plus the pair
  disagreement with the previous round's model, the "earlier model" of the store's queue; no teacher);
* ``random``: a seeded shuffle of the pool.

Round 0 (nothing corrected) is the packaged MiniLM in SIA mode, shared by both curves. Rows (JSON): order, round,
corrected sets, test ARI/AMI, threshold, seconds.

    python bench/review_queue.py --data cactus/demo/toys --k 10 --rounds 4 --pool 120 --val 30
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from cactus.data import EntitySet, read_dataset, write_dataset
from cactus.evaluation.metrics import average_scores, clustering_scores
from cactus.inference.cluster import MergeTree, sweep_thresholds
from cactus.inference.review_priority import ReviewPriority, disagreement, review_order, uncertainty
from cactus.inference.streaming import embed_sets


def similarities(encoder, sets: list[EntitySet]) -> list[np.ndarray]:
    return [np.clip(e @ e.T, -1.0, 1.0).astype(np.float64) for _, e in embed_sets(encoder, sets)]


def scored(encoder, val: list[EntitySet], test: list[EntitySet]) -> tuple[float, dict[str, float]]:
    """The threshold chosen on ``val`` and the mean test scores at it."""
    threshold = sweep_thresholds(similarities(encoder, val), [s.labels() for s in val]).best_threshold
    scores = average_scores(clustering_scores(s.labels(), MergeTree(sim).cut(threshold))
                            for s, sim in zip(test, similarities(encoder, test), strict=True))
    return threshold, scores


def queue_order(encoder, threshold: float, pool: list[EntitySet], earlier: dict[str, np.ndarray]
                ) -> tuple[list[EntitySet], dict[str, np.ndarray]]:
    """The pool by review priority under ``encoder``, and this model's labels per set (the next round's earlier)."""
    priorities: dict[str, ReviewPriority] = {}
    labels: dict[str, np.ndarray] = {}
    for entity_set, sim in zip(pool, similarities(encoder, pool), strict=True):
        tree = MergeTree(sim)
        labels[entity_set.id] = tree.cut(threshold)
        others = [earlier[entity_set.id]] if entity_set.id in earlier else []
        priorities[entity_set.id] = ReviewPriority(uncertainty(tree, threshold),
                                                   disagreement(labels[entity_set.id], others))
    by_id = {s.id: s for s in pool}
    return [by_id[i] for i in review_order(priorities)], labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("cactus/demo/toys"))
    parser.add_argument("--k", type=int, default=10, help="sets corrected per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pool", type=int, default=120, help="training sets the analyst may correct")
    parser.add_argument("--val", type=int, default=30, help="validation sets (threshold)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from cactus.encoders import EncoderConfig, SetEncoder
    from cactus.inference.model import ClusteringModel
    from cactus.training.config import TrainConfig
    from cactus.training.trainer import seed_everything, train

    started = time.perf_counter()
    data = read_dataset(args.data)
    pool, val, test = data.train[: args.pool], data.val[: args.val], data.test
    seed_everything(args.seed)
    base = SetEncoder(EncoderConfig(backbone="minilm", mode="sia"))
    threshold0, scores0 = scored(base, val, test)

    def row(order: str, round_: int, corrected: int, threshold: float, scores: dict[str, float]) -> None:
        print(json.dumps({"order": order, "round": round_, "corrected": corrected, "test_ARI": round(scores["ARI"], 4),
                          "test_AMI": round(scores["AMI"], 4), "threshold": threshold,
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)

    row("both", 0, 0, threshold0, scores0)
    with tempfile.TemporaryDirectory(prefix="cactus-review-queue-") as tmp:
        for order in ("queue", "random"):
            encoder, threshold, earlier = base, threshold0, {}
            remaining = list(pool)
            random.Random(args.seed).shuffle(remaining)
            corrected: list[EntitySet] = []
            for round_ in range(1, args.rounds + 1):
                if order == "queue":
                    remaining, earlier = queue_order(encoder, threshold, remaining, earlier)
                corrected += remaining[: args.k]
                remaining = remaining[args.k:]
                folder = Path(tmp) / f"{order}-{round_}"
                write_dataset(folder / "data", {"train": corrected, "val": val, "test": test[:2]})
                config = TrainConfig(encoder=EncoderConfig(backbone="minilm", mode="sia"), epochs=args.epochs,
                                     seed=args.seed, device="cpu")
                train(folder / "data", folder / "model", config)
                encoder = ClusteringModel.load(folder / "model", device="cpu").encoder
                threshold, scores = scored(encoder, val, test)
                row(order, round_, len(corrected), threshold, scores)


if __name__ == "__main__":
    main()
