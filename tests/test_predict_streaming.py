"""`cactus predict` streams: JSONL and Parquet in and out, input order, token-budget batches, crash-safe output
that --resume continues, and refusals that leave an existing output alone."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cactus.cli import main
from cactus.data import read_sets, write_sets
from cactus.data.errors import DataError
from cactus.data.partial_output import PartialOutput, partial_path
from cactus.data.set_files import iter_sets
from cactus.inference.model import ClusteringModel
from cactus.inference.streaming import StreamOptions, predict_stream, token_batches
from tests.tiny_data import write_tiny_dataset


@pytest.fixture(scope="module")
def sets_file(tmp_path_factory) -> Path:
    """60 unlabelled-looking sets of varied size (the tiny dataset's splits, repeated with new ids)."""
    data = write_tiny_dataset(tmp_path_factory.mktemp("stream") / "data", sets=30)
    sets = [s for split in ("train", "val", "test") for s in read_sets(data / f"{split}.jsonl").sets]
    out = []
    for copy in range(2):
        for s in sets:
            s.id = f"{s.id}-{copy}"
            out.append(type(s)(s.id, s.entities, s.clusters, s.cluster_names, None, {"source": "tiny"}))
    path = data / "many.jsonl"
    write_sets(path, out)
    return path


def clusters_of(path: Path) -> list[tuple[str, list]]:
    return [(s.id, s.clusters) for s in iter_sets(path)]


def test_token_batches_bound_padding_and_put_large_sets_first():
    costs = [10, 300, 40, 40, 5000, 20]
    batches = token_batches(costs, max_batch_tokens=400)
    assert batches[0] == [4]  # larger than the budget: alone
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches[1:]:
        assert len(batch) * max(costs[i] for i in batch) <= 400


def test_streamed_predictions_equal_the_in_memory_ones_in_input_order(tiny_model, sets_file):
    model = ClusteringModel.load(tiny_model)
    sets = list(iter_sets(sets_file))
    expected = model.predict(sets)
    got = []
    for budget in (64, 100_000):  # many small batches, then whole windows
        got.clear()
        count = predict_stream(model.encoder, iter(sets), got.append,
                               StreamOptions(threshold=model.threshold, max_batch_tokens=budget, window=7))
        assert count == len(sets)
        assert [(s.id, s.clusters) for s in got] == [(s.id, s.clusters) for s in expected]
        assert got[0].extra == {"source": "tiny"}


def test_cli_jsonl_and_parquet_in_and_out_agree(tiny_model, sets_file, tmp_path, capsys):
    assert main(["predict", str(tiny_model), str(sets_file), "--out", str(tmp_path / "p.jsonl")]) == 0
    assert "wrote 60 clustered sets" in capsys.readouterr().out
    assert not partial_path(tmp_path / "p.jsonl").exists()
    assert main(["predict", str(tiny_model), str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "p.parquet"),
                 "--with-similarity"]) == 0
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.num_rows == 60 and table.schema.field("entities").type.value_type.names == ["id", "text"]
    assert json.loads(table.column("extra")[0].as_py()) == {"source": "tiny"}
    assert len(table.column("similarity")[0].as_py()) == len(table.column("entities")[0].as_py())
    assert main(["predict", str(tiny_model), str(tmp_path / "p.parquet"), "--out", str(tmp_path / "q.jsonl")]) == 0
    assert clusters_of(tmp_path / "q.jsonl") == clusters_of(tmp_path / "p.jsonl") == clusters_of(tmp_path / "p.parquet")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_resume_continues_after_the_last_complete_record(tiny_model, sets_file, tmp_path, suffix, monkeypatch,
                                                         capsys):
    full, out = tmp_path / f"full{suffix}", tmp_path / f"out{suffix}"
    assert main(["predict", str(tiny_model), str(sets_file), "--out", str(full)]) == 0
    # a first run that dies after 25 sets (a crash in the middle of writing the 26th)
    monkeypatch.setattr("cactus.data.partial_output.PART_ROWS", 10)
    real_write = PartialOutput.write

    def dying_write(self, entity_set):
        if self.done + self.written == 25:
            if self.format == "jsonl":
                self._handle.write('{"id": "cut off')
            raise KeyboardInterrupt
        real_write(self, entity_set)

    monkeypatch.setattr(PartialOutput, "write", dying_write)
    assert main(["predict", str(tiny_model), str(sets_file), "--out", str(out)]) == 130
    assert not out.exists() and partial_path(out).exists()
    assert "stopped: 25 sets are kept" in capsys.readouterr().err  # and: rerun with --resume
    monkeypatch.setattr(PartialOutput, "write", real_write)
    kept = PartialOutput(out, resume=True)
    kept.close()
    assert kept.done == 25  # the cut-off JSONL line is dropped; Parquet wrote its last rows as a part on the way out
    assert main(["predict", str(tiny_model), str(sets_file), "--out", str(out), "--resume"]) == 0
    assert clusters_of(out) == clusters_of(full)


def test_empty_or_all_invalid_input_is_refused_and_leaves_the_output(tiny_model, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    out.write_text("precious\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["predict", str(tiny_model), str(empty), "--out", str(out)]) == 2
    assert "no valid sets to write" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "entities": []}\nnot json\n')
    assert main(["predict", str(tiny_model), str(bad), "--out", str(out), "--skip-invalid"]) == 2
    captured = capsys.readouterr()
    assert "skipped" in captured.out and "no valid sets to write" in captured.err
    assert main(["predict", str(tiny_model), str(bad), "--out", str(out)]) == 2
    assert "bad.jsonl:1: field 'entities'" in capsys.readouterr().err
    assert out.read_text() == "precious\n" and not partial_path(out).exists()
    assert main(["predict", str(tiny_model), str(bad), "--out", str(tmp_path / "p.csv")]) == 2
    assert "use .jsonl or .parquet" in capsys.readouterr().err


def test_a_parquet_text_with_a_nul_is_refused_with_its_row(tmp_path):
    import pyarrow as pa

    from cactus.data.set_files import parquet_schema

    rows = [{"id": "a", "entities": [{"id": "1", "text": "glue"}, {"id": "2", "text": "tape"}]},
            {"id": "b", "entities": [{"id": "1", "text": "gl\x00ue"}, {"id": "2", "text": "tape"}]}]
    pq.write_table(pa.Table.from_pylist(rows, schema=parquet_schema()), tmp_path / "in.parquet")
    with pytest.raises(DataError, match=r"in\.parquet:2: field 'entities\[0\]\.text': contains a NUL"):
        list(iter_sets(tmp_path / "in.parquet"))
