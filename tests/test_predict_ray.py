"""`cactus predict --engine ray`: a local Ray with two CPU actors writes what --engine local writes (one file, in
input order; shards holding the same sets), reads a folder of Parquet shards, and refuses what it cannot do.
Ray starts once for the module, small (2 CPUs, a small object store), and is shut down at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cactus.cli import main
from cactus.data import read_sets, write_sets
from cactus.data.partial_output import PartialOutput
from tests.tiny_data import write_tiny_dataset

ray = pytest.importorskip("ray", reason="the Ray engine's test needs the [ray] extra (in the dev install)")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def sets_files(tmp_path_factory) -> tuple[Path, Path]:
    """About 40 real sets as one JSONL file, and as a folder of two Parquet shards."""
    folder = tmp_path_factory.mktemp("ray-sets")
    data = write_tiny_dataset(folder / "data", sets=40)
    sets = [s for split in ("train", "val", "test") for s in read_sets(data / f"{split}.jsonl").sets]
    assert len(sets) >= 40
    write_sets(folder / "sets.jsonl", sets)
    for number, part in enumerate((sets[:25], sets[25:])):
        output = PartialOutput(folder / "shards" / f"part-{number}.parquet")
        for entity_set in part:
            output.write(entity_set)
        output.finish()
    return folder / "sets.jsonl", folder / "shards"


def predict(*argv: str) -> int:
    return main(["predict", *map(str, argv)])


def test_ray_writes_what_local_writes(local_ray, tiny_model, sets_files, tmp_path, capsys):
    jsonl, shards = sets_files
    assert predict(tiny_model, jsonl, "--out", tmp_path / "local.jsonl", "--with-similarity") == 0
    assert predict(tiny_model, jsonl, "--out", tmp_path / "ray.jsonl", "--with-similarity", "--engine", "ray",
                   "--actors", 2) == 0
    assert "(threshold" in capsys.readouterr().out
    local = (tmp_path / "local.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "ray.jsonl").read_text(encoding="utf-8") == local  # same clusters, same order, same bytes

    # A folder of Parquet shards in, JSONL shards out: the same sets and clusters, spread over shard files.
    assert predict(tiny_model, shards, "--out", tmp_path / "out-shards", "--engine", "ray", "--actors", 2,
                   "--shard-format", "jsonl", "--with-similarity") == 0
    written = sorted((tmp_path / "out-shards").glob("*.jsonl"))
    assert written
    lines = [line for shard in written for line in shard.read_text(encoding="utf-8").splitlines()]
    assert sorted(lines) == sorted(local.splitlines())

    # The Parquet shards again, through a glob, into one Parquet file: the local engine's rows, in order.
    assert predict(tiny_model, tmp_path / "local.jsonl", "--out", tmp_path / "local.parquet") == 0
    assert predict(tiny_model, f"{shards}/*.parquet", "--out", tmp_path / "ray.parquet", "--engine", "ray") == 0
    assert pq.read_table(tmp_path / "ray.parquet").to_pylist() == pq.read_table(tmp_path / "local.parquet").to_pylist()


def test_ray_refusals(tiny_model, sets_files, tmp_path, capsys):
    jsonl, shards = sets_files
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.jsonl").write_text("{}\n")
    cases = [
        (["--engine", "ray", "--resume"], "--resume goes with --engine local"),
        (["--actors", "2"], "--actors goes with --engine ray"),
        (["--engine", "ray", "--actors", "0"], "--actors must be at least 1"),
    ]
    for extra, message in cases:
        assert predict(tiny_model, jsonl, "--out", tmp_path / "p.jsonl", *extra) == 2
        assert message in capsys.readouterr().err
    assert predict(tiny_model, tmp_path / "nothing-*.jsonl", "--out", tmp_path / "p.jsonl", "--engine", "ray") == 2
    assert "no .jsonl or .parquet files" in capsys.readouterr().err
    assert predict(tiny_model, shards, "--out", tmp_path / "full", "--engine", "ray") == 2
    assert "not empty" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


def test_without_ray_the_engine_says_how_to_install_it(tiny_model, sets_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as without the extra
    assert predict(tiny_model, sets_files[0], "--out", tmp_path / "p.jsonl", "--engine", "ray") == 2
    assert "pip install 'cactus-workbench[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()
