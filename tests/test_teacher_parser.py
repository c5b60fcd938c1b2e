"""The reply parser on recorded reply shapes (tests/fixtures/teacher) and on its edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cactus.teacher import ParsedClustering, build_prompt, parse_reply
from cactus.teacher.parser import ReplyParseError, loose_key, normalize, similarity

FIXTURES = Path(__file__).parent / "fixtures" / "teacher"
CASES = sorted(p.name.removesuffix(".json") for p in FIXTURES.glob("*.json") if not p.name.endswith(".entities.json"))


def load_case(name: str) -> tuple[list[str], str, dict]:
    spec = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    entities = spec["entities"]
    if isinstance(entities, str):
        entities = json.loads((FIXTURES / f"{entities}.entities.json").read_text(encoding="utf-8"))
    reply = (FIXTURES / f"{name}.reply.txt").read_text(encoding="utf-8")
    return entities, reply, spec


def as_texts(parsed: ParsedClustering, entities: list[str]) -> list[list]:
    return [[name, [entities[i] for i in members]] for name, members in zip(parsed.names, parsed.clusters, strict=True)]


def test_there_are_at_least_fifteen_reply_shapes():
    assert len(CASES) >= 15
    for name in CASES:
        assert (FIXTURES / f"{name}.reply.txt").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_reply_shape(name: str):
    entities, reply, spec = load_case(name)
    if "error" in spec:
        with pytest.raises(ReplyParseError, match=spec["error"]):
            parse_reply(reply, entities)
        return
    expected = spec["expected"]
    parsed = parse_reply(reply, entities)
    assert as_texts(parsed, entities) == expected["clusters"]
    assert [entities[i] for i in parsed.missing] == expected["missing"]
    assert len(parsed.invented) == expected["invented"], parsed.invented
    assert len(parsed.duplicates) == expected["duplicates"], parsed.duplicates
    # a valid partial partition: every entity in at most one cluster, missing ones in none
    placed = [i for c in parsed.clusters for i in c]
    assert len(placed) == len(set(placed))
    assert sorted(placed + parsed.missing) == list(range(len(entities)))


def test_invented_lines_are_reported_verbatim():
    entities, reply, _ = load_case("invented_members")
    parsed = parse_reply(reply, entities)
    assert parsed.invented == [
        "Uni-ball Vision Elite Rollerball Pens, Bold Point, Black, 8 Pack",
        "Moleskine Classic Hard Cover Notebook, Large, Black",
    ]


def test_approximate_matches_are_recorded_with_their_score():
    entities, reply, _ = load_case("truncated_members")
    parsed = parse_reply(reply, entities)
    texts = {text for text, _, _ in parsed.approximate}
    assert "BIC Round Stic Xtra Life Ballpoint Pen…" in texts
    assert all(0.8 <= score < 1.0 for _, _, score in parsed.approximate)


def test_preamble_and_note_are_ignored_not_invented():
    entities, reply, _ = load_case("preamble_and_notes")
    parsed = parse_reply(reply, entities)
    assert parsed.ignored == [
        "Here are the products grouped into clusters:",
        "Note: the Post-it Notes could also belong with the desk accessories.",
    ]
    assert parsed.invented == []


def test_a_cut_off_too_strict_turns_rewordings_into_missing_and_invented():
    entities, reply, _ = load_case("reworded_members")
    loose = parse_reply(reply, entities)
    strict = parse_reply(reply, entities, match_cutoff=0.99)
    assert loose.missing == [] and strict.missing
    assert len(strict.invented) == len(strict.missing)


def test_duplicate_texts_in_the_set_are_told_apart_by_order():
    entities = ["AA batteries", "AA batteries", "phone charger"]
    reply = "## Batteries\n- AA batteries\n- AA batteries\n## Chargers\n- phone charger"
    parsed = parse_reply(reply, entities)
    assert parsed.clusters == [[0, 1], [2]]
    assert parsed.duplicates == []


def test_an_entity_the_reply_lists_once_of_two_equal_texts_leaves_one_missing():
    entities = ["AA batteries", "AA batteries", "phone charger"]
    parsed = parse_reply("## Power\n- AA batteries\n- phone charger", entities)
    assert parsed.clusters == [[0, 2]]
    assert parsed.missing == [1]


def test_parsing_an_unrelated_reply_fails_with_its_beginning():
    with pytest.raises(ReplyParseError, match="it begins: 'Sure! What would you like"):
        parse_reply("Sure! What would you like me to do?\n\n- something else", ["glue", "tape"])


def test_the_prompt_round_trips_through_the_parser_for_entities_with_newlines():
    entities = ["glue\nstick", "hot   glue gun", "duct tape"]
    prompt = build_prompt(entities)
    lines = prompt.splitlines()[1:-1]
    reply = "**Glue**\n" + "\n".join(f"- {x}" for x in lines[:2]) + "\n**Tape**\n- " + lines[2]
    assert parse_reply(reply, entities).clusters == [[0, 1], [2]]


def test_normalisation_and_similarity():
    assert normalize('  "Hot  Glue Gun".  ') == "hot glue gun"
    assert normalize("**Bold** `code`") == "bold code"
    assert loose_key("Post-it Notes, 3x3 in") == "post it notes 3x3 in"
    assert similarity("abc def", "abc def") == 1.0
    assert similarity("pilot g2 premium gel", "pilot g2 premium gel roller pens fine point") > 0.85
    assert similarity("glue", "tape") < 0.5
    assert similarity("", "tape") == 0.0


def test_many_entities_parse_quickly_enough_to_be_usable():
    entities = [f"product number {i} with a fairly long descriptive title, size {i % 7}" for i in range(300)]
    reply = "\n".join(
        (f"## Group {i // 30}\n" if i % 30 == 0 else "") + f"- {text.upper()}" for i, text in enumerate(entities)
    )
    parsed = parse_reply(reply, entities)
    assert len(parsed.clusters) == 10 and parsed.missing == []
