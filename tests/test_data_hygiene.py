"""Malformed input (issue 12, input hygiene) is refused with a ``file:line: field`` message and writes nothing:
NUL characters and lone surrogates, JSON nested too deeply, empty input files, CSV quotes left open, pickled
backbone weights, and very long texts (cut before tokenizing, same tokens)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from cactus.cli import main
from cactus.data import DataError, read_entities, read_sets
from cactus.encoders import EncoderConfig, SetEncoder
from cactus.encoders.backbones import BackboneError

NUL = "glue\x00stick"
SURROGATE = "glue \ud800 stick"  # what JSON "\ud800" decodes to


def set_line(texts: list[str], set_id: str = "s1", **extra) -> str:
    """One labelled sets-JSONL line, written as json.dumps does (ASCII escapes, so "\\u0000" and "\\ud800")."""
    row = {"id": set_id, "entities": [{"id": f"e{i}", "text": t} for i, t in enumerate(texts)],
           "clusters": [list(range(len(texts)))], **extra}
    return json.dumps(row) + "\n"


def good_line(set_id: str = "s1") -> str:
    return set_line(["glue stick", "hot glue gun"], set_id)


def entities_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "text": t, "labels": ["Crafts", f"C{i % 2}"]}) + "\n"
                            for i, t in enumerate(texts)))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().err


# ------------------------------------------------------------------ NUL characters and lone surrogates

@pytest.mark.parametrize(("text", "message"), [
    (NUL, "bad.jsonl:2: field 'entities[1].text': contains a NUL character (\\x00) at character 5"),
    (SURROGATE, "bad.jsonl:2: field 'entities[1].text': contains a lone surrogate \\ud800 at character 6"),
])
def test_evaluate_refuses_a_nul_or_lone_surrogate_and_writes_no_scores(tmp_path, capsys, text, message):
    gold = tmp_path / "bad.jsonl"
    gold.write_text(good_line("s0") + set_line(["glue stick", text]))
    assert "\\u" in gold.read_text()  # the file holds the JSON escape, as a user's file would
    out = tmp_path / "scores.json"
    status, err = run_cli(capsys, "evaluate", str(gold), str(gold), "--json", str(out))
    assert status == 2
    assert message in err
    assert not out.exists()


def test_a_bad_character_in_a_key_or_kept_extra_is_named_too(tmp_path):
    path = tmp_path / "sets.jsonl"
    path.write_text(set_line(["a", "b"], note={"by": "x\x00"}))
    with pytest.raises(DataError, match=r"sets.jsonl:1: field 'note.by': contains a NUL"):
        read_sets(path)
    path.write_text(set_line(["a", "b"], **{"k\ud800": 1}))
    with pytest.raises(DataError, match=r"sets.jsonl:1: field 'k\\ud800': contains a lone surrogate"):
        read_sets(path)


def test_surrogate_pairs_stay_valid(tmp_path):
    path = tmp_path / "sets.jsonl"
    path.write_text(set_line(["glue stick \U0001f600", "hot glue gun"]))  # "\ud83d\ude00" in the file
    assert "\\ud83d\\ude00" in path.read_text()
    assert read_sets(path).sets[0].texts[0] == "glue stick \U0001f600"


def test_make_sets_refuses_a_nul_in_an_entities_file(tmp_path, capsys):
    entities = entities_jsonl(tmp_path / "entities.jsonl", ["glue stick", "hot glue gun", NUL, "candle wick"])
    out = tmp_path / "out"
    status, err = run_cli(capsys, "make-sets", str(entities), str(out))
    assert status == 2
    assert "entities.jsonl:3: field 'text': contains a NUL character (\\x00) at character 5; remove it" in err
    assert not out.exists()


def test_make_sets_refuses_a_nul_in_a_csv_cell(tmp_path, capsys):
    entities = tmp_path / "entities.csv"
    entities.write_text("id,text,labels\np1,glue stick,Crafts > Glue\np2,hot\x00gun,Crafts > Glue\n")
    out = tmp_path / "out"
    status, err = run_cli(capsys, "make-sets", str(entities), str(out))
    assert status == 2
    assert "entities.csv:3: field 'text': contains a NUL character (\\x00) at character 4" in err
    assert not out.exists()


def test_skip_invalid_skips_just_the_line_with_a_bad_character(tmp_path):
    entities = entities_jsonl(tmp_path / "entities.jsonl", ["glue stick", SURROGATE, "candle wick"])
    loaded = read_entities(entities, skip_invalid=True)
    assert [e.text for e in loaded.entities] == ["glue stick", "candle wick"]
    assert [str(s) for s in loaded.skipped] == [
        f"skipped {entities}:2: field 'text': contains a lone surrogate \\ud800 at character 6 (half of a UTF-16 "
        "pair, not a character); remove it or write the whole character"]


def test_import_sets_stores_nothing_from_a_file_with_a_nul(tmp_path, capsys):
    from db import list_datasets, session_scope
    from db.session import dispose_engines

    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "sets.jsonl"
    path.write_text(good_line("s0") + good_line("s1") + set_line([NUL, "hot glue gun"], "s2"))
    status, err = run_cli(capsys, "import-sets", str(path), "--dataset", "d", "--db", url)
    assert status == 2
    assert "sets.jsonl:3: field 'entities[0].text': contains a NUL character" in err
    with session_scope(url, readonly=True) as session:
        assert list_datasets(session) == []
    dispose_engines()


@pytest.mark.parametrize(("field", "bad_set"), [
    ("entities[1].text", lambda make_set: make_set("s2", ["glue stick", SURROGATE])),
    ("cluster_names[0]", lambda make_set: make_set("s2", ["glue", "gun"], [[0, 1]], [NUL])),
    ("note", lambda make_set: make_set("s2", ["glue", "gun"], note=NUL)),
])
def test_the_store_import_refuses_sets_built_in_code_and_stores_no_row(store_url, field, bad_set):
    """On SQLite, and on PostgreSQL (which would refuse a NUL itself, mid-import) when CACTUS_TEST_PG_URL is set."""
    from sqlalchemy import func, select

    from db import create_dataset, import_sets, session_scope
    from db.models import EntityRow, SetRow
    from tests.jobs_helpers import make_set

    url = store_url
    with session_scope(url) as session:
        dataset_id = create_dataset(session, "d").id
    sets = [make_set("s1", ["glue stick", "hot glue gun"]), bad_set(make_set)]
    message = re.escape(f"set 's2': field '{field}': contains a")
    with pytest.raises(DataError, match=message), session_scope(url) as session:
        import_sets(session, dataset_id, sets)
    with session_scope(url, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(SetRow)) == 0
        assert session.scalar(select(func.count()).select_from(EntityRow)) == 0


def test_the_set_encoder_refuses_a_bad_character_before_the_tokenizer():
    from tests.tiny_backbones import tiny_bert

    model, tokenizer = tiny_bert()
    encoder = SetEncoder(EncoderConfig(backbone="tiny"), model=model, tokenizer=tokenizer)
    with pytest.raises(DataError, match=r"field 'sets\[0\]\[1\]': contains a lone surrogate"):
        encoder.tokenize([["glue stick", SURROGATE]])


# ------------------------------------------------------------------ JSON nested too deeply

def test_json_nested_100000_deep_is_a_message_not_a_recursion_error(tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(good_line() + "[" * 100_000 + "\n")
    out = tmp_path / "scores.json"
    status, err = run_cli(capsys, "evaluate", str(gold), str(gold), "--json", str(out))
    assert status == 2
    assert ("gold.jsonl:2: JSON nested deeper than 64 lists or objects inside each other at column 65; "
            "the formats need at most 3") in err
    assert "Traceback" not in err and not out.exists()


def test_json_nested_past_the_limit_in_a_kept_key_is_refused(tmp_path, capsys):
    entities = tmp_path / "entities.jsonl"
    deep = json.loads("[" * 70 + "]" * 70)
    entities.write_text(json.dumps({"id": "p1", "text": "glue", "labels": ["A", "B"], "meta": deep}) + "\n")
    out = tmp_path / "out"
    status, err = run_cli(capsys, "make-sets", str(entities), str(out))
    assert status == 2
    assert "entities.jsonl:1: JSON nested deeper than 64" in err
    assert not out.exists()
    entities.write_text(json.dumps({"id": "p1", "text": "glue", "meta": json.loads("[" * 60 + "]" * 60)}) + "\n")
    assert len(read_entities(entities).entities) == 1  # under the limit: read as before


# ------------------------------------------------------------------ empty input files

def test_evaluate_names_an_empty_gold_file(tmp_path, capsys):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text("\n\n")
    pred.write_text(good_line())
    out = tmp_path / "scores.json"
    status, err = run_cli(capsys, "evaluate", str(gold), str(pred), "--json", str(out))
    assert status == 2
    assert f"{gold}: the gold file is empty: it holds no sets to score against" in err
    assert not out.exists()


@pytest.mark.parametrize(("name", "content"), [("entities.jsonl", ""), ("entities.csv", ""),
                                               ("entities.csv", "id,text,labels\n")])
def test_make_sets_names_an_empty_entities_file(tmp_path, capsys, name, content):
    entities = tmp_path / name
    entities.write_text(content)
    out = tmp_path / "out"
    status, err = run_cli(capsys, "make-sets", str(entities), str(out))
    assert status == 2
    assert f"error: {entities}: the entities file is empty: it holds no entities\n" == err
    assert not out.exists()


def test_make_sets_says_when_every_line_was_skipped(tmp_path, capsys):
    entities = entities_jsonl(tmp_path / "entities.jsonl", [NUL, SURROGATE])
    status, err = run_cli(capsys, "make-sets", str(entities), str(tmp_path / "out"), "--skip-invalid")
    assert status == 2
    assert f"{entities}: the entities file is empty: it holds no entities (all 2 lines are invalid)" in err


# ------------------------------------------------------------------ CSV quotes left open

def test_make_sets_says_a_csv_quote_is_left_open(tmp_path, capsys):
    entities = tmp_path / "entities.csv"
    entities.write_text('id,text,labels\np1,glue stick,Crafts > Glue\np2,"hot glue gun,Crafts > Glue\n'
                        "p3,candle wick,Crafts > Candles\np4,soy wax,Crafts > Candles\n")
    out = tmp_path / "out"
    status, err = run_cli(capsys, "make-sets", str(entities), str(out))
    assert status == 2
    assert (f"{entities}:3: a quoted cell opened here is never closed (its \" runs to the end of the file); "
            "close it, or write \"\" for a quote inside a quoted cell") in err
    assert not out.exists()


def test_closed_quotes_a_quoted_newline_and_inch_marks_still_read(tmp_path):
    entities = tmp_path / "entities.csv"
    entities.write_text('id,text,labels\np1,"glue, stick",A > B\np2,"two\nlines",A > B\np3,12" pipe,A > C\n'
                        'p4,"say ""hi""",A > C')
    assert [e.text for e in read_entities(entities).entities] == ["glue, stick", "two\nlines", '12" pipe',
                                                                  'say "hi"']


# ------------------------------------------------------------------ the app's upload path

def test_the_app_names_each_malformed_upload_and_saves_nothing(app_env, tmp_path):
    from sqlalchemy import func, select

    from db import session_scope
    from db.models import SetRow
    from tests.app_helpers import open_app, texts_of

    uploads = [
        ("bad.csv", b'set_id,text\ns1,glue stick\ns1,"hot glue gun\ns2,candle wick\ns2,soy wax\n',
         "bad.csv:3: a quoted cell opened here is never closed"),
        ("nul.csv", b"set_id,text\ns1,glue stick\ns1,hot\x00gun\n",
         "nul.csv:3: field 'text': contains a NUL character (\\x00) at character 4"),
        ("nul.txt", b"glue stick\nhot\x00gun\n", "nul.txt:2: contains a NUL character"),
        ("half.jsonl", set_line(["glue stick", SURROGATE]).encode(),
         "half.jsonl:1: field 'entities[1].text': contains a lone surrogate \\ud800"),
        ("deep.jsonl", b"[" * 100_000, "deep.jsonl:1: JSON nested deeper than 64"),
    ]
    at = open_app("data")
    for name, data, message in uploads:
        at.file_uploader[0].upload(name, data).run()
        errors = [e.value for e in at.error]
        assert any(e.startswith(f"**{message}") and "nothing was saved" in e for e in errors), (name, errors)
        assert "Preview of" not in texts_of(at)
    with session_scope(app_env, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(SetRow)) == 0


# ------------------------------------------------------------------ pickled backbone weights

class _Payload:
    """Pickles as a call that would create ``marker`` if anything unpickled it without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickled_pytorch_model_bin_is_a_backbone_error_naming_it(tmp_path, tiny_bert):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = Path(shutil.copytree(tiny_bert, tmp_path / "bert"))
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    torch.save({**weights, "extra": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(BackboneError) as caught:
        SetEncoder(EncoderConfig(backbone=str(folder)))
    message = str(caught.value)
    assert message.startswith(f"{folder / 'pytorch_model.bin'}: refused: torch.load(weights_only=True) cannot "
                              "read this pickled checkpoint (")
    assert "GLOBAL posix.mkdir" in message
    assert "Only model.safetensors weights, or a pytorch_model.bin that torch.load loads with weights_only=True, "\
        "are accepted" in message
    assert not marker.exists()

    torch.save(weights, folder / "pytorch_model.bin")  # plain tensors load with weights_only=True, as before
    assert SetEncoder(EncoderConfig(backbone=str(folder))).info.family == "bert"


# ------------------------------------------------------------------ very long texts

def test_a_long_text_is_cut_before_tokenizing_and_keeps_its_tokens():
    from tests.tiny_backbones import tiny_bert

    model, tokenizer = tiny_bert()
    encoder = SetEncoder(EncoderConfig(backbone="tiny", max_tokens=16), model=model, tokenizer=tokenizer)
    long_text = "hot glue gun for kids " * 50_000  # 1.1 MB
    whole = tokenizer([long_text, "glue stick"], truncation=True, max_length=16)["input_ids"]
    assert encoder.tokenize_entities([[long_text, "glue stick"]]) == [whole]
