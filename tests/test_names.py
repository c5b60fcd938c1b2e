"""Names for predicted clusters: a same-set named cluster that overlaps, the nearest named cluster of the dataset,
else distinctive keywords (class-based TF-IDF); and `cactus predict --name-clusters / --names-from`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cactus.cli import main
from cactus.data import read_sets
from cactus.inference.names import NameBook, NamedClustering, keyword_names, name_clusters
from tests.tiny_data import write_tiny_dataset

TEXTS = ["hot glue gun", "glue stick", "white glue", "red apple", "green apple", "dried apple slices"]
LABELS = [0, 0, 0, 1, 1, 1]


def test_keywords_are_the_words_distinctive_of_each_cluster():
    names = keyword_names(TEXTS, LABELS, top=1)
    assert [n for n, _ in names] == ["glue", "apple"]
    assert all(weight > 0 for _, weight in names)


def test_a_cluster_without_words_is_named_after_its_first_member():
    names = keyword_names(["7", "x", "glue stick", "glue"], [0, 0, 1, 1])
    assert names[0] == ("7", 0.0) and names[1][0].startswith("glue")


def test_a_same_set_named_cluster_that_overlaps_enough_gives_its_name():
    named = [NamedClustering([[0, 1, 2, 3], [4, 5]], ["Adhesives", ""])]
    names = name_clusters(TEXTS, LABELS, named=named, min_overlap=0.7)
    assert names[0].name == "Adhesives" and names[0].source == "overlap" and names[0].score == pytest.approx(0.75)
    assert names[1].source == "keywords" and "apple" in names[1].name  # the unnamed cluster gives no name


def test_the_nearest_named_cluster_of_the_book_is_taken_only_when_close_enough():
    glue, fruit = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    book = NameBook.build([("Glue", np.stack([glue, glue])), ("glue ", np.stack([glue])), ("Fruit", fruit[None])])
    assert sorted(book.names) == ["Fruit", "Glue"]  # same name pooled, the commoner spelling kept
    embeddings = np.stack([glue, glue, glue + 0.1, np.array([0.0, 0.0, 1.0])] + [np.array([0.0, 0.0, 1.0])] * 2)
    names = name_clusters(TEXTS, LABELS, embeddings=embeddings, book=book, min_cosine=0.9)
    assert (names[0].name, names[0].source) == ("Glue", "nearest") and names[0].score > 0.99
    assert names[1].source == "keywords"  # far from every name of the book


def test_naming_from_a_book_without_embeddings_is_refused():
    book = NameBook.build([("Glue", np.ones((1, 3)))])
    with pytest.raises(ValueError, match="embeddings"):
        name_clusters(TEXTS, LABELS, book=book)


def test_predict_names_clusters_and_marks_them_generated(tmp_path, tiny_model):
    data = write_tiny_dataset(tmp_path / "data")
    test = read_sets(data / "test.jsonl").sets
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"id": s.id, "entities": [e.__dict__ for e in s.entities]}) + "\n"
                                  for s in test))
    plain = tmp_path / "plain.jsonl"
    assert main(["predict", str(tiny_model), str(unlabelled), "--out", str(plain)]) == 0
    assert all("cluster_names" not in json.loads(line) for line in plain.read_text().splitlines())

    out = tmp_path / "named.jsonl"
    assert main(["predict", str(tiny_model), str(unlabelled), "--out", str(out),
                 "--names-from", str(data / "train.jsonl")]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["clusters"] for r in rows] == [json.loads(line)["clusters"] for line in plain.read_text().splitlines()]
    reference_names = {n for s in read_sets(data / "train.jsonl").sets for n in s.cluster_names}
    for row in rows:
        assert row["cluster_names_generated"] is True
        assert len(row["cluster_names"]) == len(row["clusters"]) and all(row["cluster_names"])
    generated = [n for r in rows for n in r["cluster_names"]]
    assert any(n in reference_names for n in generated)  # names taken from the nearest named training cluster

    # a labelled input: its own names win where the predicted cluster overlaps them
    labelled = tmp_path / "labelled-out.jsonl"
    assert main(["predict", str(tiny_model), str(data / "test.jsonl"), "--out", str(labelled),
                 "--name-clusters"]) == 0
    for row, original in zip((json.loads(x) for x in labelled.read_text().splitlines()), test, strict=True):
        for cluster, name in zip(row["clusters"], row["cluster_names"], strict=True):
            for members, given in zip(original.clusters, original.cluster_names, strict=True):
                if sorted(members) == sorted(cluster):
                    assert name == given
