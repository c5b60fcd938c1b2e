"""Entity files in JSONL and CSV, with their validation messages."""

from __future__ import annotations

import pytest

from cactus.data import DataError, read_entities


def test_jsonl_and_csv_read_the_same_entities(tmp_path):
    (tmp_path / "e.jsonl").write_text(
        '{"id": "1", "text": "glue stick", "labels": ["Crafts", "Glue"]}\n'
        '{"id": "2", "text": "candle wick"}\n', encoding="utf-8")
    (tmp_path / "e.csv").write_text('id,text,labels\n1,glue stick,Crafts > Glue\n2,"candle wick",\n',
                                    encoding="utf-8")
    jsonl = read_entities(tmp_path / "e.jsonl").entities
    csv = read_entities(tmp_path / "e.csv").entities
    assert jsonl == csv
    assert jsonl[0].labels == ("Crafts", "Glue") and jsonl[1].labels == ()


def test_csv_without_text_column_is_refused(tmp_path):
    (tmp_path / "e.csv").write_text("id,title\n1,glue\n")
    with pytest.raises(DataError, match=r"e.csv:1: the CSV has no 'text' column \(columns: id, title\)"):
        read_entities(tmp_path / "e.csv")


def test_csv_without_id_column_numbers_rows_and_bom_is_ignored(tmp_path):
    (tmp_path / "e.csv").write_bytes("\ufefftext\nglue\nwick\n".encode())
    assert [e.id for e in read_entities(tmp_path / "e.csv").entities] == ["row-2", "row-3"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "2", "text": ""}', "e.jsonl:2: field 'text': empty text"),
        ('{"id": "2"}', "e.jsonl:2: field 'text': missing text"),
        ('{"id": "1", "text": "again"}', "e.jsonl:2: field 'id': duplicate entity id '1' (first on line 1)"),
        ('{"id": "2", "text": "x", "labels": "Crafts"}', "e.jsonl:2: field 'labels': expected a list"),
    ],
)
def test_invalid_entity_lines(tmp_path, line, message):
    (tmp_path / "e.jsonl").write_text('{"id": "1", "text": "ok"}\n' + line + "\n")
    with pytest.raises(DataError) as info:
        read_entities(tmp_path / "e.jsonl")
    assert str(info.value).startswith(f"{tmp_path}/{message}")


def test_invalid_utf8_in_csv_names_the_line(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"id,text\n1,ok\n2,caf\xe9\n")
    with pytest.raises(DataError, match=r"e.csv:3: invalid UTF-8"):
        read_entities(tmp_path / "e.csv")


def test_csv_row_with_too_many_cells(tmp_path):
    (tmp_path / "e.csv").write_text("id,text\n1,glue, stick\n")
    with pytest.raises(DataError, match=r"e.csv:2: 3 cells for 2 columns"):
        read_entities(tmp_path / "e.csv")


def test_skip_invalid_entities(tmp_path):
    (tmp_path / "e.jsonl").write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": " "}\n{"id": "3", "text": "y"}\n')
    loaded = read_entities(tmp_path / "e.jsonl", skip_invalid=True)
    assert [e.id for e in loaded.entities] == ["1", "3"]
    assert [(s.line, s.reason) for s in loaded.skipped] == [(2, "field 'text': empty text")]
