"""The app's logic without Streamlit: reading uploads, comparing clusterings, the heatmap figure, the demo setup."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app import compare, uploads
from app.heatmap import similarity_figure
from cactus.data import DataError
from cactus.evaluation.metrics import clustering_scores

# --- uploads ---------------------------------------------------------------------------------------------------


def jsonl(*rows: dict) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


GLUE = {"id": "s1", "entities": [{"id": "a", "text": "glue stick"}, {"id": "b", "text": "hot glue gun"},
                                 {"id": "c", "text": "candle wick"}], "clusters": [[0, 1], [2]],
        "cluster_names": ["Glue", "Candles"], "split": "test"}
WAX = {"id": "s2", "entities": [{"id": "a", "text": "beeswax sheets"}, {"id": "b", "text": "soy wax flakes"}]}


def test_jsonl_upload_keeps_clusters_and_extra_keys():
    parsed = uploads.parse_upload("sets.jsonl", jsonl(GLUE, WAX))
    assert [s.id for s in parsed.sets] == ["s1", "s2"]
    assert parsed.entities == 5 and parsed.labelled == 1
    assert parsed.sets[0].clusters == [[0, 1], [2]] and parsed.sets[0].extra == {"split": "test"}
    assert parsed.splits == {"test": 1, "none": 1}


def test_jsonl_errors_name_the_upload_line_and_field():
    bad = dict(WAX, clusters=[[0], [0, 1]])
    with pytest.raises(DataError) as caught:
        uploads.parse_upload("mine.jsonl", jsonl(GLUE, bad))
    assert str(caught.value).startswith("mine.jsonl:2: field 'clusters[1][0]'")
    with pytest.raises(DataError, match=r"^mine.jsonl:1: invalid JSON"):
        uploads.parse_upload("mine.jsonl", b'{"id": \n')
    with pytest.raises(DataError, match="holds no sets"):
        uploads.parse_upload("mine.jsonl", b"\n\n")


def test_every_invalid_line_of_an_upload_is_listed_not_only_the_first():
    lines = jsonl(GLUE, dict(WAX, entities=[]), WAX) + b'{"id": "s3", "entities": [{"id": "a", "text": "gl\n' + \
        b'{"id": "s1", "entities": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]}\n'
    with pytest.raises(uploads.UploadProblems) as caught:
        uploads.parse_upload("mine.jsonl", lines)
    problems = caught.value.problems
    assert len(problems) == 3 and [p.split(":")[1] for p in problems] == ["2", "4", "5"]
    assert "the line ends inside the string that starts at column" in problems[1]  # a cut-off line, said so
    assert "duplicate set id 's1'" in problems[2]
    with pytest.raises(uploads.UploadProblems) as caught:
        uploads.parse_upload("x.csv", b"set_id,text\ns1,glue\ns1,\n,wax\ns1,gun\n")
    assert [p.split(":")[1] for p in caught.value.problems] == ["3", "4"]


def test_csv_upload_groups_rows_by_set_and_names_clusters():
    data = b"set_id,text,cluster\ns1,glue stick,Glue\ns2,beeswax,\ns1,hot glue gun,Glue\ns1,candle wick,Candles\n" \
           b"s2,soy wax,\n"
    parsed = uploads.parse_upload("sets.csv", data)
    first, second = parsed.sets
    assert first.id == "s1" and first.texts == ["glue stick", "hot glue gun", "candle wick"]
    assert first.clusters == [[0, 1], [2]] and first.cluster_names == ["Glue", "Candles"]
    assert second.texts == ["beeswax", "soy wax"] and second.clusters is None


@pytest.mark.parametrize(("data", "message"), [
    (b"set,words\ns1,glue\n", r"^x.csv:1: the header lacks the column\(s\) text"),
    (b"set_id,text\ns1,glue\ns1,\n", r"^x.csv:3: field 'text': empty text"),
    (b"set_id,text\ns1,glue\ns2,wax\ns1,gun\n", r"^x.csv:3: field 'set_id': set 's2' has only 1 entity"),
    (b"set_id,text,cluster\ns1,glue,A\ns1,gun,\n", r"^x.csv:3: field 'cluster': no cluster, but other rows"),
    (b"set_id,text\ns1,glue\ns1,\xff\n", r"^x.csv:3: invalid UTF-8"),
    (b"", r"^x.csv:1: the file is empty"),
])
def test_csv_errors_name_the_line(data, message):
    with pytest.raises(DataError, match=message):
        uploads.parse_upload("x.csv", data)


def test_csv_line_numbers_count_quoted_newlines():
    data = b'set_id,text\ns1,"two\nlines"\ns1,\n'
    with pytest.raises(DataError, match=r"^x.csv:4: field 'text'"):
        uploads.parse_upload("x.csv", data)


def test_pasted_text_is_split_at_blank_lines():
    parsed = uploads.parse_text("glue stick\nhot glue gun\n\n\n  beeswax \nsoy wax\ncandle\n", prefix="p")
    assert [(s.id, s.texts) for s in parsed.sets] == [("p-1", ["glue stick", "hot glue gun"]),
                                                       ("p-2", ["beeswax", "soy wax", "candle"])]
    with pytest.raises(DataError, match=r"^pasted text:4: this set has only 1 entity \('lonely'\)"):
        uploads.parse_text("a\nb\n\nlonely\n")
    with pytest.raises(DataError, match="no entities"):
        uploads.parse_text(" \n\n")


def test_unknown_extension_says_which_are_read():
    with pytest.raises(DataError, match=r"cannot read '.xlsx' files; upload sets as .jsonl, .csv"):
        uploads.parse_upload("book.xlsx", b"")


# --- comparing clusterings -------------------------------------------------------------------------------------


def test_entity_disagreement_marks_only_the_moved_entity_and_its_companions():
    a = [[0, 1], [2, 3]]
    b = [[0], [1, 2, 3]]  # entity 1 moved from {0} to {2, 3}
    shares = compare.entity_disagreement(a, b, 4)
    # entity 1 changed companions 0, 2 and 3; 0 lost 1; 2 and 3 gained 1
    assert shares.tolist() == pytest.approx([1 / 3, 1.0, 1 / 3, 1 / 3])
    assert compare.entity_disagreement(a, [[2, 3], [1, 0]], 4).tolist() == [0, 0, 0, 0]
    found = compare.differences(a, ["Glue", "Wax"], b, ["", ""], 4)
    assert found[0].entity == 1 and found[0].left == "Glue" and found[0].right == "Cluster 2"


def test_agreement_matches_the_library_metrics():
    a, b = [[0, 1, 2], [3, 4]], [[0, 1], [2, 3, 4]]
    labels = compare.labels_of
    expected = clustering_scores(labels(a, 5), labels(b, 5))
    assert compare.agreement(a, b, 5) == {"ARI": expected["ARI"], "AMI": expected["AMI"]}


def test_colors_follow_the_entities_across_clusterings():
    teacher = [[0, 1], [2, 3], [4]]
    model = [[4], [2, 3], [0, 1]]  # the same groups in another order
    other = [[0, 1, 2, 3], [4]]
    colors = compare.assign_colors([teacher, model, other])
    assert colors[0] == [0, 1, 2]
    assert colors[1] == [2, 1, 0]
    # {0,1,2,3} overlaps {0,1} and {2,3} by half each: it takes one of them; {4} keeps its colour
    assert colors[2][1] == 2 and colors[2][0] in (0, 1)


def test_unrelated_clusters_get_new_colors():
    colors = compare.assign_colors([[[0, 1, 2, 3, 4, 5, 6, 7], [8]], [[0], [1], [2, 3, 4, 5, 6, 7, 8]]])
    assert colors[0] == [0, 1]
    assert colors[1][2] == 0  # 7 of 9 shared with the big cluster
    assert sorted(colors[1][:2]) == [2, 3]  # singletons overlap nothing enough: new colours


def test_heatmap_order_groups_clusters():
    assert compare.heatmap_order([[3, 1], [0], [2]]) == ([1, 3, 0, 2], [0, 2, 3, 4])


# --- heatmap ---------------------------------------------------------------------------------------------------


def test_heatmap_orders_by_cluster_outlines_blocks_and_centres_on_the_threshold():
    texts = ["glue stick", "candle wick", "hot glue gun", "beeswax <candle>"]
    sim = np.array([[1.0, 0.1, 0.8, 0.2], [0.1, 1.0, 0.0, 0.7], [0.8, 0.0, 1.0, 0.1], [0.2, 0.7, 0.1, 1.0]])
    figure = similarity_figure(sim, texts, [[0, 2], [1, 3]], ["Glue", "Candles"], [0, 1], threshold=0.35,
                               title="SIA")
    heat = figure.data[0]
    assert np.asarray(heat.z).tolist() == [[1.0, 0.8, 0.1, 0.2], [0.8, 1.0, 0.0, 0.1], [0.1, 0.0, 1.0, 0.7],
                                           [0.2, 0.1, 0.7, 1.0]]
    assert heat.zmid == 0.35 and "threshold +0.35" in heat.colorbar.ticktext
    assert "beeswax &lt;candle&gt;" in heat.customdata[3][3][0]  # texts are escaped in hover labels
    assert heat.customdata[0][1][2] == "same cluster; above threshold"
    outlines = [s for s in figure.layout.shapes if s.type == "rect"]
    assert [(s.x0, s.x1, s.line.color) for s in outlines] == [(-0.5, 1.5, "#4e79a7"), (1.5, 3.5, "#f28e2b")]
    assert "#4e79a7" in figure.layout.yaxis.ticktext[0] and "glue stick" in figure.layout.yaxis.ticktext[0]


def test_heatmap_refuses_a_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match="for a set of 3 entities"):
        similarity_figure(np.eye(2), ["a", "b", "c"], [[0, 1, 2]], [""], [0], threshold=0.5, title="")


def test_the_edit_log_numbers_clusters_from_one_and_names_entities_by_text():
    from app.edit_log import edit_details

    texts = ["glue stick", "tape", "scissors"]
    assert edit_details({"entity": 1, "to": 0, "name": ""}, texts) == "entity 'tape'; to #1"
    assert edit_details({"entity": 2, "to": None, "name": "Odd one"}, texts) == \
        "entity 'scissors'; to a new cluster; name 'Odd one'"
    assert edit_details({"clusters": [0, 2], "name": None}, texts) == "clusters #1, #3"
    assert edit_details({"cluster": 1, "entities": [0, 2]}, texts) == "cluster #2; entities 'glue stick', 'scissors'"


def test_counts_take_the_plural_only_when_not_one():
    from app.text import count

    assert [count(1, "epoch"), count(2, "epoch"), count(0, "set")] == ["1 epoch", "2 epochs", "0 sets"]
    assert count(1, "entity", "entities") == "1 entity" and count(3, "entity", "entities") == "3 entities"
