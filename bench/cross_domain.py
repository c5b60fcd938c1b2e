"""Cross-domain table in the style of the paper's Table A1 (issue 14): does a fine-tuned model travel?

For each dataset of the shared development data (``../shared/data``: amazon_toys_dev, banking77, clinc150,
instacart) the script builds labelled sets (``cactus make-sets``' taxonomy builder, ``--sets`` sets per dataset,
split 60/20/20 with disjoint entities), then for every training source (each dataset, and with ``--with-mix`` the
equal mix of all the others) and every seed trains

- ``NIA ft``: MiniLM fine-tuned without inter-entity attention,
- ``SIA ft``: MiniLM fine-tuned with SIA (the project's default),
- ``SIA ft + adapted``: the SIA model adapted (``cactus adapt``: self-supervised steps on the target's unlabelled
  training texts, with the source's labelled sets replayed, then its backbone averaged with frozen MiniLM at
  ``cactus adapt``'s default WiSE-FT alpha) to each target it was not trained on,

and scores each on every dataset's test split at the model's own threshold (chosen on its training data's
validation split), at the threshold swept on the target's validation split (how the baselines are tuned, and
what a user does with a per-dataset threshold) and at the one chosen on those sets without labels (``cactus
predict --threshold auto``), beside the best frozen baseline (best AMI of K-Means / Spectral /
Agglomerative on frozen MiniLM, k or threshold chosen on the target's validation split, same test sets, same run).
Extra training options (``--train-option wise_ft=0.5``, any TrainConfig option) compare robustness variants.

Prints one ``{"measured": ...}`` JSON line per model and target as soon as it is scored (so a run stopped early
keeps what it measured), then one JSON object per (source, target, row) with AMI mean and spread over seeds, then
the table as Markdown.

    python bench/cross_domain.py --quick              # 2 datasets, 60 sets each, 1 seed, 1 epoch (CPU, ~20 min)
    python bench/cross_domain.py --seeds 0 1 2 --with-mix
    python bench/cross_domain.py --sets 150 --epochs 1 --mix-only   # a broad model, tested where it never trained
    python bench/cross_domain.py --sets 150 --score-model MODEL_DIR   # how an existing model travels
    python bench/cross_domain.py --combine seed0.out seed1.out seed2.out  # one-seed runs, combined
    python bench/cross_domain.py --seeds 1 --adapt-steps 0 --train-option wise_ft='"auto"'  # no adapted rows
    python bench/cross_domain.py --mix-only --modes sia   # no NIA rows: about half the training time
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cactus.data import read_dataset, read_entities, write_dataset
from cactus.data.builder import BuilderConfig, build_taxonomy_sets
from cactus.encoders.config import EncoderConfig
from cactus.evaluation.baselines import run_baselines
from cactus.inference.cluster import sweep_thresholds
from cactus.inference.embedding import frozen_embedder
from cactus.inference.model import ClusteringModel
from cactus.inference.per_set_cut import choose_cut, cut_scores
from cactus.inference.unlabelled_threshold import unlabelled_threshold
from cactus.training.adapt import adapt
from cactus.training.checkpoint import read_card
from cactus.training.config import AdaptConfig, TrainConfig, config_from_dict, config_options
from cactus.training.trainer import entity_texts, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ALL = ("amazon_toys_dev", "banking77", "clinc150", "instacart")
QUICK = ("amazon_toys_dev", "banking77")


def build_sets(data: Path, name: str, sets: int, out: Path) -> Path:
    """``sets`` labelled sets of dataset ``name`` in ``out/name`` (built once, kept; never committed)."""
    folder = out / name
    if not (folder / "test.jsonl").is_file():
        entities = read_entities(data / name / "entities.jsonl").entities
        report = build_taxonomy_sets(entities, BuilderConfig(sets=sets, kmax=6, smax=5, seed=0))
        write_dataset(folder, report.splits)
    return folder


def best_baseline(folder: Path, embed) -> dict[str, Any]:
    rows = run_baselines(read_dataset(folder), embed)["rows"]
    best = max(rows, key=lambda r: r["AMI"])
    return {"method": best["method"], "AMI": best["AMI"]}


#: What each trained row is scored at on a target's test sets (the keys of the JSON rows).
COLUMNS = ("AMI", "AMI_target_val_choice", "AMI_unlabelled_threshold", "AMI_per_set_cut")


def scores_on(model_dir: Path, targets: dict[str, Path], device: str | None
              ) -> dict[str, tuple[float, float, float, float]]:
    """Test AMI per target, in the order of :data:`COLUMNS`:

    - the model's own cut (its threshold, or the per-set cut when its validation chose that);
    - the better of the threshold swept on the target's labelled validation sets and the per-set cut, chosen on
      those sets: the protocol the frozen baselines get (their k strategy or threshold is chosen on the target's
      validation split), and what a user does with a per-dataset threshold after labelling a few sets;
    - the threshold chosen on the same sets without their labels (``--threshold auto``);
    - the per-set cut (``--cut silhouette``), which needs nothing of the target at all.
    """
    model = ClusteringModel.load(model_dir, device=device)
    out = {}
    for name, folder in targets.items():
        dataset = read_dataset(folder, ("val", "test"))
        val_sims, test_sims = (model.similarities(sets) for sets in (dataset.val, dataset.test))  # embedded once each
        val_gold, test_gold = [s.labels() for s in dataset.val], [s.labels() for s in dataset.test]
        swept = sweep_thresholds(val_sims, val_gold).best_threshold
        labelled = choose_cut(val_sims, val_gold, swept)
        choice = unlabelled_threshold(val_sims)
        free = model.threshold if choice is None else choice.threshold
        runs = ((model.threshold, model.cut), (swept, labelled.cut), (free, "threshold"),
                (model.threshold, "silhouette"))
        out[name] = tuple(cut_scores(test_sims, test_gold, threshold, cut)["AMI"] for threshold, cut in runs)
    return out


def target_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 14's targets on this run: off-domain, SIA ft + adapted against the best frozen baseline (pairs ahead by
    at least 0.03 AMI, mean gap; in each of :data:`COLUMNS`); in-domain, SIA ft against the frozen baseline and
    against NIA ft (at their own cuts)."""
    cell = {(r["train"], r["test"], r["row"].split(" (")[0] if r["row"].startswith("frozen") else r["row"]): r
            for r in rows}
    frozen = {(t, s): r for (t, s, label), r in cell.items() if label.startswith("frozen")}
    out: dict[str, Any] = {"target_check": True}
    for key, name in (("AMI", "own_cut"), ("AMI_target_val_choice", "target_val_choice"),
                      ("AMI_unlabelled_threshold", "unlabelled_threshold"), ("AMI_per_set_cut", "per_set_cut")):
        gaps = [r[key] - frozen[(t, s)]["AMI"] for (t, s, label), r in cell.items()
                if label == "SIA ft + adapted" and key in r]
        if gaps:
            out[f"off_domain_{name}"] = {"pairs": len(gaps), "ahead_by_0.03": sum(g >= 0.03 for g in gaps),
                                         "mean_gap": round(float(np.mean(gaps)), 4),
                                         "worst_gap": round(float(min(gaps)), 4)}
    home = [(t, r) for (t, s, label), r in cell.items() if label == "SIA ft" and t == s]  # own val is the target's
    out["in_domain"] = {t: {"vs_frozen": round(r["AMI"] - frozen[(t, t)]["AMI"], 4),
                            "vs_nia": round(r["AMI"] - cell[(t, t, "NIA ft")]["AMI"], 4)
                            if (t, t, "NIA ft") in cell else None} for t, r in home}
    if home:
        for key in ("vs_frozen", "vs_nia"):
            gaps = [v[key] for v in out["in_domain"].values() if v[key] is not None]
            out[f"in_domain_mean_{key}"] = round(float(np.mean(gaps)), 4) if gaps else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--work", type=Path, default=Path("runs/cross_domain"), help="sets and models go here")
    parser.add_argument("--datasets", nargs="+", choices=ALL, help="default: all four (two with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="2 datasets, 60 sets each, 1 seed, 1 epoch, 20 adaptation steps")
    parser.add_argument("--sets", type=int, default=300, help="sets per dataset, all splits (default 300)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--adapt-steps", type=int, default=100,
                        help="self-supervised steps per adaptation; 0 leaves out the adapted rows (in-domain and "
                        "unadapted off-domain rows only, about half the time)")
    parser.add_argument("--with-mix", action="store_true", help="also train on the equal mix of the other datasets")
    parser.add_argument("--mix-only", action="store_true",
                        help="train only the mixes (implies --with-mix): each on all datasets but one, adapted to it")
    parser.add_argument("--modes", nargs="+", choices=("nia", "sia"), default=["nia", "sia"],
                        help="which fine-tuned rows to train (default both; the adapted row needs sia)")
    parser.add_argument("--train-option", action="append", default=[], metavar="NAME=VALUE",
                        help="extra TrainConfig option for the trained rows (JSON value), e.g. wise_ft=0.5")
    parser.add_argument("--score-model", type=Path, metavar="DIR",
                        help="train nothing: score this model folder (e.g. the demo's) on every dataset's test split "
                        "at its own, the labelled and the label-free threshold, beside the frozen baselines")
    parser.add_argument("--keep-adapted", action="store_true",
                        help="keep the adapted models' weights (by default only their cards, to save disk)")
    parser.add_argument("--device")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="OUTPUT",
                        help="train nothing: combine the printed output of one-seed runs on the same sets (e.g. "
                        "seeds run on different machines) into one table with mean and spread over the seeds")
    args = parser.parse_args()
    if args.adapt_steps < 0:
        parser.error(f"--adapt-steps must be 0 or more, got {args.adapt_steps}")
    if args.combine:
        rows = combine(args.combine)
        print_rows(rows)
        print_table(rows)
        return
    if args.quick:
        args.datasets = args.datasets or list(QUICK)
        args.sets, args.seeds, args.epochs, args.adapt_steps = min(args.sets, 60), args.seeds[:1], 1, 20
    names = args.datasets or list(ALL)
    extra = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.train_option)}
    started = time.perf_counter()
    folders = {name: build_sets(args.data, name, args.sets, args.work / "sets") for name in names}
    embed = frozen_embedder("minilm", device=args.device, show_progress=False)
    baselines = {name: best_baseline(folder, embed) for name, folder in folders.items()}
    if args.score_model is not None:
        for target, amis in scores_on(args.score_model, folders, args.device).items():
            print(json.dumps({"model": str(args.score_model), "test": target, "frozen": baselines[target],
                              "cut": read_card(args.score_model).cut, **dict(zip(COLUMNS, amis, strict=True))}))
        return
    sources: dict[str, list[Path]] = {} if args.mix_only else {name: [folder] for name, folder in folders.items()}
    if args.with_mix or args.mix_only:
        for name in names:
            sources[f"mix without {name}"] = [f for other, f in folders.items() if other != name]
    results: dict[tuple[str, str, str], list[tuple[float, ...]]] = {}  # AMI per seed, in the order of COLUMNS
    cuts: dict[tuple[str, str, str], list[str]] = {}  # the cut each seed's model chose on its validation

    def record(key: tuple[str, str, str], seed: int, amis: tuple[float, ...], cut: str) -> None:
        results.setdefault(key, []).append(amis)
        cuts.setdefault(key, []).append(cut)
        print(json.dumps({"measured": {"train": key[0], "test": key[1], "row": key[2], "seed": seed, "cut": cut,
                                       "frozen": baselines[key[1]], **dict(zip(COLUMNS, amis, strict=True))}}),
              flush=True)

    for source, train_dirs in sources.items():
        for seed in args.seeds:
            for mode in args.modes:
                config = config_from_dict(TrainConfig, {
                    **config_options(TrainConfig(encoder=EncoderConfig(mode=mode), epochs=args.epochs, seed=seed,
                                                 device=args.device, mix="equal")), **extra})
                out = args.work / "models" / f"{source.replace(' ', '_')}-{mode}-s{seed}"
                train(train_dirs[0] if len(train_dirs) == 1 else train_dirs, out, config, force=True)
                for target, amis in scores_on(out, folders, args.device).items():
                    record((source, target, f"{mode.upper()} ft"), seed, amis, read_card(out).cut)
                if mode != "sia" or not args.adapt_steps:
                    continue
                for target, folder in folders.items():
                    if folder in train_dirs:
                        continue
                    adapted = out.with_name(out.name + f"-to-{target}")
                    texts = entity_texts(read_dataset(folder, ("train",)).train)
                    adapt(out, texts, adapted, AdaptConfig(steps=args.adapt_steps, seed=seed, device=args.device),
                          force=True, source=target)
                    amis = scores_on(adapted, {target: folder}, args.device)[target]
                    record((source, target, "SIA ft + adapted"), seed, amis, read_card(adapted).cut)
                    if not args.keep_adapted:
                        shutil.rmtree(adapted / "backbone", ignore_errors=True)
    rows = table_rows(sources, names, baselines, results, cuts)
    print_rows(rows)
    minutes = (time.perf_counter() - started) / 60
    print(json.dumps({"datasets": names, "sets": args.sets, "seeds": args.seeds, "epochs": args.epochs,
                      "adapt_steps": args.adapt_steps, "train_options": extra, "minutes": round(minutes, 1),
                      "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
                      }))
    print_table(rows)


TRAINED = ("NIA ft", "SIA ft", "SIA ft + adapted")


def table_rows(sources, names, baselines: dict[str, dict[str, Any]],
               results: dict[tuple[str, str, str], list[tuple[float, ...]]],
               cuts: dict[tuple[str, str, str], list[str]]) -> list[dict[str, Any]]:
    """One row per (source, target): the frozen baseline, then each trained row's mean and spread over seeds."""
    rows = []
    for source in sources:
        for target in names:
            base = baselines[target]
            rows.append({"train": source, "test": target, "row": f"frozen {base['method']}", "AMI": base["AMI"],
                         "sd": 0.0, "seeds": 0})
            for label in TRAINED:
                values = results.get((source, target, label))
                if values:
                    row = {"train": source, "test": target, "row": label, "cut": cuts[(source, target, label)]}
                    for key, column in zip(COLUMNS, np.array(values).T, strict=True):
                        row |= {key: float(np.mean(column)), "sd" + key[3:]: float(np.std(column))}
                    rows.append({**row, "seeds": len(values)})
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(json.dumps(row))
    print(json.dumps(target_check(rows)))


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| train on | test on | row | AMI, own cut (mean ± sd over seeds) | AMI, cut chosen on the target's "
          "labelled validation | AMI, threshold chosen without labels | AMI, per-set cut |\n"
          "|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [f"{row[key]:.3f}" + (f" ± {row['sd' + key[3:]]:.3f}" if row["seeds"] > 1 else "") if key in row
                 else "-" for key in COLUMNS]
        print(f"| {row['train']} | {row['test']} | {row['row']} | " + " | ".join(cells) + " |")
    sys.stdout.flush()


def combine(files: list[Path]) -> list[dict[str, Any]]:
    """The rows of several one-seed runs of the same sets (their printed JSON), as one run over all their seeds."""
    sources: dict[str, None] = {}
    names: dict[str, None] = {}
    baselines: dict[str, dict[str, Any]] = {}
    results: dict[tuple[str, str, str], list[tuple[float, ...]]] = {}
    cuts: dict[tuple[str, str, str], list[str]] = {}
    for file in files:
        for line in file.read_text().splitlines():
            if not line.startswith('{"train"'):
                continue
            row = json.loads(line)
            sources[row["train"]], names[row["test"]] = None, None
            if row["row"].startswith("frozen "):
                baselines.setdefault(row["test"], {"method": row["row"][len("frozen "):], "AMI": row["AMI"]})
                continue
            if row["seeds"] != 1:
                raise SystemExit(f"{file}: --combine takes runs of one seed each, this one has {row['seeds']}")
            key = (row["train"], row["test"], row["row"])
            results.setdefault(key, []).append(tuple(row[k] for k in COLUMNS))
            cuts.setdefault(key, []).extend(row["cut"])
    return table_rows(sources, names, baselines, results, cuts)


if __name__ == "__main__":
    main()
