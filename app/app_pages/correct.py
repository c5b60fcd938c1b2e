"""Correct: fix a set's clustering by moving, merging, splitting, renaming and creating clusters. Every change is
written to the store's edit log at once (undo and redo walk it), so nothing is lost on a reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from app import chrome, cluster_cards, pickers, state
from app.compare import cluster_label
from app.edit_log import edit_details
from app.heatmap import similarity_figure
from cactus.errors import CactusError
from db import (
    Create,
    Delete,
    Edit,
    Merge,
    Move,
    Rename,
    Session,
    SetDetail,
    Split,
    accept_clustering,
    apply_edit,
    edit_history,
    mark_reviewed,
    redo,
    start_clustering,
    undo,
)
from db.errors import AccessError, ConflictError, EditError, NotFoundError

NEW = -1  # the "new cluster" choice of the move form
SHORTCUTS = ("**Keys:** M move · Z undo · Shift+Z redo · S save (mark reviewed) · Shift+S save and go to the next "
             "set · P / N previous / next set")


def flash() -> None:
    """The outcome of the last action (kept across the rerun that shows its result)."""
    message = st.session_state.pop("correct_flash", None)
    if message:
        kind, text = message
        getattr(st, kind)(text)


def change(detail: SetDetail, action: Callable[[Session], Any], done: str) -> None:
    """Run an edit against the set as the page showed it; report the outcome and show the new state."""
    try:
        with state.writing("annotator", "Correcting clusterings") as session:
            action(session)
        st.session_state["correct_flash"] = ("success", done)
    except ConflictError as exc:
        st.session_state["correct_flash"] = ("warning", f"{exc}. The page now shows the newest state.")
    except (EditError, NotFoundError, AccessError) as exc:
        st.session_state["correct_flash"] = ("error", str(exc))
    st.rerun()


def save_and_next(set_id: int, who: str) -> None:
    """Mark the set reviewed, then move the set picker on (a button callback, before the page reruns)."""
    try:
        with state.writing("annotator", "Saving corrections") as session:
            mark_reviewed(session, set_id, author=who)
        st.session_state["correct_flash"] = ("success", "Saved: the set is marked reviewed.")
        pickers.advance_set()
    except (EditError, ConflictError, NotFoundError, AccessError) as exc:
        st.session_state["correct_flash"] = ("error", str(exc))


def seen_head(detail: SetDetail) -> int:
    """The edit-log head of this set as the page showed it before this run: edits made against it are refused
    when someone else changed the set in between (the store's ``expected_head``)."""
    seen: dict[int, int] = st.session_state.setdefault("correct_seen", {})
    head = seen.get(detail.id, detail.edit_head)
    seen[detail.id] = detail.edit_head
    return head


def start_panel(detail: SetDetail, shown: dict[str, cluster_cards.Shown], who: str, head: int) -> None:
    st.info("This set has no corrected clustering yet. Start from one of the clusterings below (you can undo it), "
            "or from scratch.")
    with st.container(horizontal=True):
        for source in ("teacher", "model", "reference"):
            if source in shown and st.button(f"Start from the {source}", key=f"correct_accept_{source}",
                                             type="primary" if source == "teacher" else "secondary",
                                             icon=":material/play_arrow:"):
                clustering_id = shown[source].clustering.id
                change(detail, lambda s, c=clustering_id: accept_clustering(s, detail.id, c, author=who,
                                                                            expected_head=head),
                       f"Started from the {source}'s clustering.")
        if st.button("Every entity alone", key="correct_start_singletons"):
            change(detail, lambda s: start_clustering(s, detail.id, author=who, expected_head=head),
                   "Started with every entity in a cluster of its own.")
        if st.button("All in one cluster", key="correct_start_one"):
            change(detail, lambda s: start_clustering(s, detail.id, author=who, together=True,
                                                      expected_head=head),
                   "Started with all entities in one cluster.")
    if shown:
        columns = st.columns(len(shown))
        for column, item in zip(columns, shown.values(), strict=True):
            with column:
                st.markdown(f"**{item.title}**")
                cluster_cards.cluster_cards(item, detail.texts)


def toolbar(detail: SetDetail, shown: dict[str, cluster_cards.Shown], who: str, head: int) -> None:
    with st.container(horizontal=True):
        if st.button("Undo", key="correct_undo", shortcut="Z", disabled=not detail.can_undo, icon=":material/undo:"):
            change(detail, lambda s: undo(s, detail.id, author=who, expected_head=head), "Undone.")
        if st.button("Redo", key="correct_redo", shortcut="Shift+Z", disabled=not detail.can_redo,
                     icon=":material/redo:"):
            change(detail, lambda s: redo(s, detail.id, author=who, expected_head=head), "Redone.")
        if detail.reviewed:
            if st.button("Reopen", key="correct_reopen", icon=":material/lock_open:",
                         help="Take back the review mark (training then uses the teacher's labels for this set)."):
                change(detail, lambda s: mark_reviewed(s, detail.id, author=who, reviewed=False),
                       "The set is open for review again.")
        elif st.button("Save", key="correct_save", type="primary", shortcut="S", icon=":material/task_alt:",
                       help="Your changes are stored as you make them; saving marks the set reviewed, so that "
                            "training prefers your clustering to the teacher's."):
            change(detail, lambda s: mark_reviewed(s, detail.id, author=who), "Saved: the set is marked reviewed.")
        st.button("Save and next", key="correct_save_next", shortcut="Shift+S", icon=":material/skip_next:",
                  on_click=save_and_next, args=(detail.id, who))
        with st.popover("Start again from…", icon=":material/restart_alt:"):
            st.caption("Replaces your clustering (undo brings it back).")
            for source in ("teacher", "model", "reference"):
                if source in shown and st.button(f"the {source}", key=f"correct_restart_{source}"):
                    clustering_id = shown[source].clustering.id
                    change(detail, lambda s, c=clustering_id: accept_clustering(s, detail.id, c, author=who,
                                                                                expected_head=head),
                           f"Started again from the {source}'s clustering.")


def cluster_choice(human: cluster_cards.Shown, generated: frozenset[str] = frozenset()) -> Callable[[int], str]:
    def label(c: int) -> str:
        if c == NEW:
            return "➕ a new cluster"
        mark = " (generated)" if human.names[c] in generated else ""
        return f"#{c + 1} {cluster_label(human.names, c)}{mark} ({len(human.clusters[c])})"

    return label


def focus(detail: SetDetail, where: list[int]) -> tuple[int, int]:
    """(entity, cluster) the forms start on: those of the last edit of this set, so its choices stay in place."""
    kept = st.session_state.get("correct_focus")
    if not kept or kept[0] != detail.id:
        return 0, 0
    _, entity, anchor = kept
    entity = entity if 0 <= entity < len(where) else 0
    return entity, where[anchor] if anchor is not None and 0 <= anchor < len(where) else 0


def edit_forms(detail: SetDetail, human: cluster_cards.Shown, who: str, head: int,
               generated: frozenset[str] = frozenset()) -> None:
    texts = detail.texts
    where = human.clustering.labels()
    clusters = list(range(len(human.clusters)))
    name_of = cluster_choice(human, generated)
    entity_label = lambda i: f"{texts[i]}  ·  in #{where[i] + 1}"  # noqa: E731
    # fresh widgets after every change, since cluster numbers may have shifted; they start on the entity and
    # the cluster of the last edit (found again by a member entity), not back on the first ones
    key = f"{detail.id}_{detail.edit_head}"
    entity_at, cluster_at = focus(detail, where)
    first_member = lambda c: human.clusters[c][0] if human.clusters[c] else None  # noqa: E731
    # keyed: the tab the analyst works in stays open after an edit (a fresh tab set would open "Move" again)
    move, merge, split, rename, create, dissolve = st.tabs(["Move", "Merge", "Split", "Rename", "New cluster",
                                                            "Dissolve"], key="correct_tab", on_change="rerun")
    with move:
        entity = st.selectbox("Entity", range(len(texts)), index=entity_at, format_func=entity_label,
                              key=f"correct_move_entity_{key}")
        target = st.selectbox("To", [*clusters, NEW], index=cluster_at, format_func=name_of,
                              key=f"correct_move_to_{key}")
        name = st.text_input("Name of the new cluster", key=f"correct_move_name_{key}") if target == NEW else ""
        if st.button("Move", key="correct_move", type="primary", shortcut="M", icon=":material/arrow_right_alt:"):
            apply(detail, Move(entity=entity, to=None if target == NEW else target, name=name), who, head,
                  f"Moved {texts[entity]!r}.", (entity, entity))
    with merge:
        chosen = st.multiselect("Clusters to merge (into the first)", clusters, format_func=name_of,
                                key=f"correct_merge_{key}")
        name = st.text_input("Name of the merged cluster (empty: keep the first one's)",
                             key=f"correct_merge_name_{key}")
        if st.button("Merge", key="correct_merge_go", disabled=len(chosen) < 2, icon=":material/call_merge:"):
            apply(detail, Merge(clusters=tuple(chosen), name=name or None), who, head,
                  f"Merged {len(chosen)} clusters.", (entity_at, first_member(chosen[0])))
    with split:
        cluster = st.selectbox("Cluster", clusters, index=cluster_at, format_func=name_of,
                               key=f"correct_split_cluster_{key}")
        members = st.multiselect("Entities to take out", human.clusters[cluster], format_func=texts.__getitem__,
                                 key=f"correct_split_members_{key}")
        name = st.text_input("Name of the split-off cluster", key=f"correct_split_name_{key}")
        if st.button("Split", key="correct_split_go", disabled=not members, icon=":material/call_split:"):
            apply(detail, Split(cluster=cluster, entities=tuple(members), name=name), who, head,
                  f"Split {len(members)} entities out of #{cluster + 1}.", (entity_at, members[0]))
    with rename:
        cluster = st.selectbox("Cluster", clusters, index=cluster_at, format_func=name_of,
                               key=f"correct_rename_cluster_{key}")
        name = st.text_input("New name", value=human.names[cluster], key=f"correct_rename_name_{key}_{cluster}")
        if st.button("Rename", key="correct_rename_go", icon=":material/label:"):
            apply(detail, Rename(cluster=cluster, name=name), who, head, f"Renamed #{cluster + 1} to {name!r}.",
                  (entity_at, first_member(cluster)))
    with create:
        members = st.multiselect("Entities (taken from their clusters)", range(len(texts)), format_func=entity_label,
                                 key=f"correct_create_members_{key}")
        name = st.text_input("Name", key=f"correct_create_name_{key}")
        if st.button("Create cluster", key="correct_create_go", disabled=not members, icon=":material/add_circle:"):
            apply(detail, Create(entities=tuple(members), name=name), who, head,
                  f"Created {name or 'a cluster'!r}.", (entity_at, members[0]))
    with dissolve:
        cluster = st.selectbox("Cluster", clusters, index=cluster_at, format_func=name_of,
                               key=f"correct_dissolve_cluster_{key}")
        st.caption("Each of its entities becomes a cluster of its own.")
        if st.button("Dissolve", key="correct_dissolve_go", icon=":material/scatter_plot:"):
            apply(detail, Delete(cluster=cluster), who, head, f"Dissolved #{cluster + 1}.", (entity_at, None))


def apply(detail: SetDetail, edit: Edit, who: str, head: int, done: str,
          keep: tuple[int, int | None] = (0, None)) -> None:
    """Apply an edit; ``keep`` is (entity, a member of the cluster) the forms start on afterwards."""
    st.session_state["correct_focus"] = (detail.id, *keep)
    change(detail, lambda s: apply_edit(s, detail.id, edit, author=who, expected_head=head), done)


def history(detail: SetDetail) -> None:
    entries = state.read(lambda s: edit_history(s, detail.id))
    with st.expander(f"Edit log ({len(entries)} entries)"):
        if not entries:
            st.caption("No edits yet.")
            return
        st.dataframe([{"#": e.seq, "action": e.action + (f" of #{e.target_seq}" if e.target_seq else ""),
                       "details": edit_details(e.params, detail.texts), "by": e.author,
                       "when": e.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")} for e in reversed(entries)],
                     hide_index=True, width="stretch")


def similarities(detail: SetDetail, human: cluster_cards.Shown) -> None:
    model = state.active()
    if model is None:
        return
    with st.expander("Similarities seen by the active model, outlined by your clusters"):
        try:
            sim = state.similarity(model.checkpoint, tuple(detail.texts))
            threshold = state.loaded_model(model).threshold
        except (CactusError, OSError) as exc:
            st.error(f"The active model cannot be loaded: {exc}")
            return
        st.plotly_chart(similarity_figure(sim, detail.texts, human.clusters, human.names, human.colors,
                                          threshold=threshold, title=f"{model.name} ({model.mode.upper()})"),
                        key="correct_heatmap", config={"displaylogo": False})


chrome.page_intro("correct", "Fix a set's clustering; each change is stored at once, and saving marks the set "
                  "reviewed so that training prefers it.")
chrome.role_note("annotator", "correcting")
dataset = pickers.choose_dataset()
if dataset is None:
    st.info("Upload entity sets on the Data page (or load the bundled demo) first.")
    st.stop()
summary = pickers.choose_set(dataset)
who = chrome.author()
if summary is None:
    st.info("No set matches the filters in the sidebar.")
    st.stop()

detail = state.set_detail(summary.id)
shown = cluster_cards.shown_clusterings(detail, state.active())
head = seen_head(detail)
status = f"✓ reviewed by {detail.reviewed_by}" if detail.reviewed else "not reviewed yet"
st.subheader(f"Set {detail.name}")
st.caption(f"{len(detail.entities)} {detail.noun} · split {detail.split} · {status}")
flash()

if "human" not in shown:
    start_panel(detail, shown, who, head)
    st.stop()

human = shown["human"]
toolbar(detail, shown, who, head)
st.caption(SHORTCUTS)
cards, forms = st.columns([3, 2], gap="large")
with cards:
    st.markdown(f"**Your clustering** · {len(human.clusters)} clusters")
    cluster_cards.cluster_cards(human, detail.texts, numbered=True,
                                generated=cluster_cards.generated_names(shown))
with forms:
    edit_forms(detail, human, who, head, cluster_cards.generated_names(shown))
others = [s for s in ("teacher", "model", "reference") if s in shown]
if others:
    with st.expander("Compare with " + ", ".join(f"the {s}" for s in others)):
        for column, source in zip(st.columns(len(others)), others, strict=True):
            with column:
                st.markdown(f"**{shown[source].title}**")
                cluster_cards.cluster_cards(shown[source], detail.texts)
similarities(detail, human)
history(detail)
