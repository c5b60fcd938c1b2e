"""Benchmark the Spectral baseline: one eigendecomposition per set for every k vs sklearn's per-k refit (issue 13).

``cactus baseline`` picks k per set by silhouette over k = 2..10, so Spectral clustering ran nine times per set,
each time rebuilding the affinity graph and solving its eigenproblem, with K-Means on all OpenMP threads for a few
dozen points. The library now computes the spectral embedding once at the largest k, runs K-Means on its first k
columns for each k, and clusters sets on one thread.

Both variants cluster the same sets (the demo's validation and test splits, 120 sets of Amazon toy titles, embedded
once by the packaged MiniLM), in the same process, one after the other; a row per variant with seconds, sets/s,
and the mean ARI between the two variants' chosen clusterings. Then the whole ``run_baselines`` once, with the
time of each progress step.

    python bench/baselines.py [--dataset FOLDER] [--backbone minilm]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from itertools import pairwise
from pathlib import Path

import numpy as np
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from cactus.data import read_dataset
from cactus.evaluation.baselines import run_baselines, silhouette_labels, spectral_labels_for
from cactus.inference.embedding import frozen_embedder

DEMO = Path(__file__).resolve().parents[1] / "cactus" / "demo" / "toys"


def refit_per_k(embeddings: np.ndarray, ks, seed: int) -> dict[int, np.ndarray]:
    """The previous Spectral baseline: sklearn's SpectralClustering refitted for every k."""
    n = embeddings.shape[0]
    affinity = np.clip((embeddings @ embeddings.T + 1.0) / 2.0, 0.0, 1.0)
    out = {}
    for k in ks:
        kk = max(1, min(k, n))
        if kk == 1:
            out[k] = np.zeros(n, dtype=np.int64)
        elif kk == n:
            out[k] = np.arange(n)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                out[k] = SpectralClustering(n_clusters=kk, affinity="precomputed", random_state=seed,
                                            assign_labels="kmeans").fit_predict(affinity)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEMO)
    parser.add_argument("--backbone", default="minilm")
    args = parser.parse_args()
    dataset = read_dataset(args.dataset)
    sets = dataset.val + dataset.test
    embeddings = frozen_embedder(args.backbone, show_progress=False)(sets)
    machine = {"machine": platform.machine(), "python": platform.python_version()}
    variants = {"refit per k, default threads (before)": (refit_per_k, None),
                "one eigendecomposition, one thread (now)": (spectral_labels_for, 1)}
    chosen: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    seconds = dict.fromkeys(variants, 0.0)
    for emb in embeddings:  # the variants take turns set by set, so load from other processes falls on both
        for variant, (clusterer, threads) in variants.items():
            start = time.perf_counter()
            with threadpool_limits(limits=threads):
                chosen[variant].append(silhouette_labels(emb, clusterer, 3, 0))
            seconds[variant] += time.perf_counter() - start
    for variant, spent in seconds.items():
        print(json.dumps({"bench": "spectral_silhouette", "variant": variant, "sets": len(sets),
                          "seconds": round(spent, 2), "sets_per_s": round(len(sets) / spent, 2), **machine}))
    before_s, now_s = seconds.values()
    print(json.dumps({"bench": "spectral_silhouette", "speedup": round(before_s / now_s, 2)}))
    before, now = chosen.values()
    print(json.dumps({"bench": "spectral_silhouette", "agreement_mean_ari": round(float(np.mean(
        [adjusted_rand_score(a, b) for a, b in zip(before, now, strict=True)])), 4)}))
    steps: list[tuple[float, str]] = []
    start = time.perf_counter()
    report = run_baselines(dataset, frozen_embedder(args.backbone, show_progress=False),
                           progress=lambda message: steps.append((time.perf_counter() - start, message)))
    print(json.dumps({"bench": "run_baselines", "sets": len(sets), "seconds": round(time.perf_counter() - start, 2),
                      "progress_messages": len(steps), "longest_silence_s": round(max(
                          b[0] - a[0] for a, b in pairwise(steps)), 2),
                      "rows": report["rows"], **machine}))


if __name__ == "__main__":
    main()
