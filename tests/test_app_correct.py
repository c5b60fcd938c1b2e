"""The Correct page on a real store: start from the teacher, move, merge, split, rename and create, undo and redo
through the edit log, save (mark reviewed), and a reload that finds everything where it was."""

from __future__ import annotations

from db import Move, apply_edit, edit_history, get_set, session_scope
from tests.app_helpers import open_app, seed_store, texts_of


def human(url: str, set_id: int):
    with session_scope(url, readonly=True) as session:
        return get_set(session, set_id)


def log(url: str, set_id: int) -> list[str]:
    with session_scope(url, readonly=True) as session:
        return [e.action for e in edit_history(session, set_id)]


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def widget(at, kind: str, prefix: str):
    return next(w for w in getattr(at, kind) if w.key and w.key.startswith(prefix))


def largest_set(seeded, url):
    with session_scope(url, readonly=True) as session:
        details = [get_set(session, i) for i in seeded.set_ids]
    return max(details, key=lambda d: (len(d.entities), -d.id))


def test_start_move_undo_redo_and_save(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    target = largest_set(seeded, app_env)
    at = open_app("correct", query={"set": str(target.id)})
    assert "has no corrected clustering yet" in texts_of(at)

    button(at, "Start from the teacher").click().run()
    detail = human(app_env, target.id)
    assert detail.human.clusters == detail.teacher.clusters and detail.human.producer == "tester"
    assert "Started from the teacher's clustering." in texts_of(at)
    assert "Your clustering" in texts_of(at)

    # move the first entity into a new cluster named "Odd one"
    widget(at, "selectbox", "correct_move_entity_").set_value(0).run()
    widget(at, "selectbox", "correct_move_to_").set_value(-1).run()
    widget(at, "text_input", "correct_move_name_").set_value("Odd one").run()
    at.button(key="correct_move").click().run()
    moved = human(app_env, target.id).human
    assert (0,) in moved.clusters and moved.names[moved.clusters.index((0,))] == "Odd one"
    assert "Odd one" in texts_of(at)

    at.button(key="correct_undo").click().run()
    assert human(app_env, target.id).human.clusters == detail.teacher.clusters
    at.button(key="correct_redo").click().run()
    assert human(app_env, target.id).human.clusters == moved.clusters
    assert log(app_env, target.id) == ["accept", "move", "undo", "redo"]

    at.button(key="correct_save").click().run()
    saved = human(app_env, target.id)
    assert saved.reviewed and saved.reviewed_by == "tester"
    assert "Saved: the set is marked reviewed." in texts_of(at)

    # a reload (a new session on the same URL) shows the same clustering and state
    again = open_app("correct", query={"set": str(target.id)})
    page = texts_of(again)
    assert "✓ reviewed by tester" in page and "Odd one" in page
    assert again.button(key="correct_redo").disabled and not again.button(key="correct_undo").disabled


def test_merge_split_rename_create_and_dissolve(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    target = largest_set(seeded, app_env)
    at = open_app("correct", query={"set": str(target.id)})
    button(at, "Every entity alone").click().run()
    size = len(target.entities)
    assert len(human(app_env, target.id).human.clusters) == size

    widget(at, "multiselect", "correct_merge_").set_value([0, 1]).run()
    widget(at, "text_input", "correct_merge_name_").set_value("Pair").run()
    at.button(key="correct_merge_go").click().run()
    state = human(app_env, target.id).human
    assert state.clusters[0] == (0, 1) and state.names[0] == "Pair"

    widget(at, "selectbox", "correct_split_cluster_").set_value(0).run()
    widget(at, "multiselect", "correct_split_members_").set_value([1]).run()
    widget(at, "text_input", "correct_split_name_").set_value("Second").run()
    at.button(key="correct_split_go").click().run()
    state = human(app_env, target.id).human
    assert state.clusters[0] == (0,) and state.clusters[-1] == (1,) and state.names[-1] == "Second"

    widget(at, "selectbox", "correct_rename_cluster_").set_value(0).run()
    widget(at, "text_input", "correct_rename_name_").set_value("First").run()
    at.button(key="correct_rename_go").click().run()
    assert human(app_env, target.id).human.names[0] == "First"

    widget(at, "multiselect", "correct_create_members_").set_value([0, 2]).run()
    widget(at, "text_input", "correct_create_name_").set_value("Made").run()
    at.button(key="correct_create_go").click().run()
    state = human(app_env, target.id).human
    assert state.clusters[-1] == (0, 2) and state.names[-1] == "Made"

    widget(at, "selectbox", "correct_dissolve_cluster_").set_value(len(state.clusters) - 1).run()
    at.button(key="correct_dissolve_go").click().run()
    state = human(app_env, target.id).human
    assert (0,) in state.clusters and (2,) in state.clusters
    assert log(app_env, target.id) == ["accept", "merge", "split", "rename", "create", "delete"]
    assert "Edit log (6 entries)" in [e.label for e in at.expander]


def test_an_edit_on_a_stale_view_is_refused_and_the_page_catches_up(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    target = largest_set(seeded, app_env)
    at = open_app("correct", query={"set": str(target.id)})
    button(at, "Start from the teacher").click().run()
    with session_scope(app_env) as session:  # someone else edits the set meanwhile
        apply_edit(session, target.id, Move(entity=1, to=None, name="Theirs"), author="someone")
    at.button(key="correct_move").click().run()  # still the page's old view
    assert "was changed by someone else" in texts_of(at)
    assert log(app_env, target.id) == ["accept", "move"]
    assert "Theirs" in texts_of(at)


def test_save_and_next_marks_reviewed_and_moves_on(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    at = open_app("correct", query={"set": str(seeded.set_ids[0])})
    assert "correct_save_next" not in [b.key for b in at.button]  # nothing to save before a clustering is started
    button(at, "Start from the model").click().run()
    at.button(key="correct_save_next").click().run()
    assert human(app_env, seeded.set_ids[0]).reviewed
    assert next(s for s in at.selectbox if s.label.startswith("Set (")).value == seeded.set_ids[1]


def test_generated_names_are_the_starting_names_and_are_marked(app_env, tiny_model, tmp_path):
    from db import add_clustering

    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, teacher=False)
    target = largest_set(seeded, app_env)
    size = len(target.entities)
    halves = [list(range(0, size // 2)), list(range(size // 2, size))]
    with session_scope(app_env) as session:
        add_clustering(session, target.id, "model", halves, ["pens, markers", "glue, sticks"],
                       model_id=seeded.model_id, producer="tiny-sia", details={"names_generated": True})
    at = open_app("correct", query={"set": str(target.id)})
    assert "pens, markers" in texts_of(at) and "(generated)" in texts_of(at)
    button(at, "Start from the model").click().run()
    assert human(app_env, target.id).human.names == ("pens, markers", "glue, sticks")
    shown = texts_of(at)
    assert shown.count("(generated)") >= 2  # the corrected clustering's names are still the generated ones
    rename = widget(at, "selectbox", "correct_rename_cluster_")
    assert rename.options[0].startswith("#1 pens, markers (generated)")


def test_the_forms_stay_on_the_entity_and_cluster_of_the_last_edit(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model)
    target = largest_set(seeded, app_env)
    at = open_app("correct", query={"set": str(target.id)})
    button(at, "Start from the teacher").click().run()
    last = len(target.entities) - 1
    widget(at, "selectbox", "correct_move_entity_").set_value(last).run()
    widget(at, "selectbox", "correct_move_to_").set_value(-1).run()
    widget(at, "text_input", "correct_move_name_").set_value("Picked").run()
    at.button(key="correct_move").click().run()
    after = human(app_env, target.id).human
    picked = after.clusters.index((last,))
    # fresh widgets (cluster numbers can shift), started on the moved entity and the cluster it went to
    assert widget(at, "selectbox", "correct_move_entity_").value == last
    assert widget(at, "selectbox", "correct_move_to_").value == picked
    assert widget(at, "selectbox", "correct_rename_cluster_").value == picked
