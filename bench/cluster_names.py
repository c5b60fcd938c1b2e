"""Benchmark the names given to predicted clusters (issue 13): how often the nearest named cluster's name equals the
reference name of the best-matching reference cluster.

The name book holds the named clusters of the training sets (mean embeddings); the test sets are clustered by the
encoder at the threshold that scores best on the validation sets; each predicted cluster's reference name is the
name of the reference cluster it overlaps most (Jaccard). Rows (JSON): per ``min_cosine``, the share of predicted
clusters named from the book (coverage), the share of those whose name is right (precision), the share of all
clusters named right; the same with the reference clusters themselves as the clustering (the naming alone).

    python bench/cluster_names.py --data cactus/demo/toys [--model MODEL_DIR]

Without ``--model`` the encoder is the packaged MiniLM without inter-entity attention (no training needed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cactus.data import read_dataset
from cactus.inference.cluster import MergeTree, sweep_thresholds
from cactus.inference.names import NameBook, NamedClustering, overlap_name
from cactus.inference.streaming import embed_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset folder with named train/val/test sets")
    parser.add_argument("--model", type=Path, help="trained model folder (default: packaged MiniLM, NIA)")
    parser.add_argument("--min-cosine", default="0.0,0.5,0.6,0.7,0.8,0.9")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.model is not None:
        from cactus.inference.model import ClusteringModel

        encoder = ClusteringModel.load(args.model).encoder
        name = args.model.name
    else:
        from cactus.encoders import EncoderConfig, SetEncoder

        encoder = SetEncoder(EncoderConfig(backbone="minilm", mode="nia"))
        name = "minilm-nia"
    data = read_dataset(args.data)
    embedded = {split: list(embed_sets(encoder, data[split])) for split in ("train", "val", "test")}
    book = NameBook.build((n, emb[members]) for s, emb in embedded["train"]
                          for members, n in zip(s.clusters, s.cluster_names, strict=True))
    sims = {split: [np.clip(e @ e.T, -1, 1).astype(np.float64) for _, e in rows] for split, rows in embedded.items()}
    threshold = sweep_thresholds(sims["val"], [s.labels() for s, _ in embedded["val"]]).best_threshold
    for clustering in ("predicted", "reference"):
        pairs = []  # (nearest name, cosine, reference name)
        for (entity_set, emb), sim in zip(embedded["test"], sims["test"], strict=True):
            labels = MergeTree(sim).cut(threshold) if clustering == "predicted" else entity_set.labels()
            reference = [NamedClustering(entity_set.clusters, entity_set.cluster_names)]
            for k in range(int(labels.max()) + 1):
                members = np.flatnonzero(labels == k).tolist()
                nearest, cosine = book.nearest(emb[members])
                truth, _ = overlap_name(members, reference)
                pairs.append((nearest, cosine, truth))
        for min_cosine in (float(x) for x in args.min_cosine.split(",")):
            named = [(n, t) for n, c, t in pairs if c >= min_cosine]
            right = sum(n == t for n, t in named)
            print(json.dumps({"encoder": name, "clustering": clustering, "threshold": threshold,
                              "min_cosine": min_cosine, "clusters": len(pairs), "book_names": len(book),
                              "coverage": round(len(named) / len(pairs), 3),
                              "precision": round(right / len(named), 3) if named else None,
                              "right_of_all": round(right / len(pairs), 3)}), flush=True)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
