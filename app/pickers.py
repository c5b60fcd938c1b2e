"""The dataset and set pickers of the sidebar, with the set list's filters and previous/next.

The choice lives in ``st.session_state`` and in the URL (``?dataset=..&set=..``). Session-state keys used here
start with the widget's purpose (``sets_``, ``dataset_``); page-only keys start with the page's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from app import state
from app.chrome import keep, link_to
from app.text import count
from db import DatasetInfo, SetSummary

SET_LIST_LIMIT = 500


def _int_param(name: str) -> int | None:
    value = st.query_params.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def choose_dataset(where: st.delta_generator.DeltaGenerator | None = None, *, label: str = "Dataset"
                   ) -> DatasetInfo | None:
    """A dataset picker that remembers the choice across pages and reloads; an empty state when there is none."""
    target = where if where is not None else st.sidebar
    found = state.datasets()
    if not found:
        target.info("The store has no datasets yet.")
        link_to("data", "Upload sets or load the demo", target)
        return None
    by_id = {d.id: d for d in found}
    remembered = st.session_state.get("dataset_current") or _int_param("dataset")
    current = st.session_state.get("dataset_choice")
    st.session_state["dataset_choice"] = current if current in by_id else (
        remembered if remembered in by_id else found[0].id)
    choice = target.selectbox(label, list(by_id), key="dataset_choice",
                              format_func=lambda i: f"{by_id[i].name} ({count(by_id[i].sets, 'set')}, "
                                                    f"{by_id[i].reviewed} reviewed)")
    if st.session_state.get("dataset_current") != choice:
        st.session_state.pop("sets_current", None)
    st.session_state["dataset_current"] = choice
    st.query_params["dataset"] = str(choice)
    return by_id[choice]


@dataclass(frozen=True)
class SetFilters:
    """What the set list is narrowed to (the arguments of :func:`db.list_sets`)."""

    search: str = ""
    reviewed: bool | None = None
    split: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    min_disagreement: float | None = None
    order: str = "position"

    def query(self) -> dict[str, object]:
        return {"search": self.search or None, "reviewed": self.reviewed, "split": self.split,
                "min_size": self.min_size, "max_size": self.max_size, "min_disagreement": self.min_disagreement,
                "order": self.order}


ORDERS = {"position": "import order", "size": "largest first", "disagreement": "most disagreement first"}


FILTER_DEFAULTS = {"sets_search": "", "sets_status": "All", "sets_disagree": 0, "sets_split": "any",
                   "sets_order": "position"}


def set_filters(dataset: DatasetInfo) -> SetFilters:
    """The filter widgets of the set list (sidebar); they keep their values from page to page."""
    low, high = state.size_range(dataset.id)
    for key, default in FILTER_DEFAULTS.items():
        st.session_state.setdefault(key, default)
    size_now = st.session_state.get("sets_size")
    if not (isinstance(size_now, (tuple, list)) and low <= size_now[0] <= size_now[1] <= high):
        st.session_state["sets_size"] = (low, high)
    keep(*FILTER_DEFAULTS, "sets_size")
    bar = st.sidebar
    search = bar.text_input("Search", key="sets_search", placeholder="set id or entity text")
    status = bar.segmented_control("Review status", ["All", "Not reviewed", "Reviewed"], key="sets_status") or "All"
    with bar.expander("More filters", expanded=False):
        disagree = st.slider("Teacher and model disagree on at least this share of entity pairs (%)", 0, 100,
                             step=5, key="sets_disagree",
                             help="0 turns the filter off. Sets lacking a teacher or a model clustering are left "
                                  "out when it is on.")
        split = st.selectbox("Split", ["any", "train", "val", "test", "unassigned"], key="sets_split")
        size = st.slider("Entities in the set", low, high, key="sets_size") if high > low else (low, high)
        order = st.selectbox("Order", list(ORDERS), format_func=ORDERS.__getitem__, key="sets_order")
    return SetFilters(search=search.strip(), reviewed={"All": None, "Not reviewed": False, "Reviewed": True}[status],
                      split=None if split == "any" else split,
                      min_size=size[0] if size[0] > low else None, max_size=size[1] if size[1] < high else None,
                      min_disagreement=disagree / 100 if disagree else None, order=order)


def remembered_filters(dataset: DatasetInfo) -> SetFilters:
    """The set list's filters as last set on Review or Correct (the defaults when never set), without widgets."""
    low, high = state.size_range(dataset.id)
    value = {key: st.session_state.get(key, default) for key, default in FILTER_DEFAULTS.items()}
    keep(*FILTER_DEFAULTS, "sets_size")
    size = st.session_state.get("sets_size")
    if not (isinstance(size, (tuple, list)) and low <= size[0] <= size[1] <= high):
        size = (low, high)
    split = value["sets_split"]
    return SetFilters(search=str(value["sets_search"]).strip(),
                      reviewed={"All": None, "Not reviewed": False, "Reviewed": True}.get(value["sets_status"]),
                      split=None if split == "any" else split,
                      min_size=size[0] if size[0] > low else None, max_size=size[1] if size[1] < high else None,
                      min_disagreement=value["sets_disagree"] / 100 if value["sets_disagree"] else None,
                      order=value["sets_order"])


def describe_filters(filters: SetFilters) -> str:
    """The filters in words ("" when none narrows the list)."""
    parts = []
    if filters.search:
        parts.append(f"containing {filters.search!r}")
    if filters.reviewed is not None:
        parts.append("reviewed" if filters.reviewed else "not reviewed")
    if filters.split:
        parts.append(f"in {filters.split}")
    if filters.min_size is not None or filters.max_size is not None:
        parts.append(f"of {filters.min_size or 2}–{filters.max_size or '…'} entities")
    if filters.min_disagreement is not None:
        parts.append(f"teacher and model apart on ≥ {filters.min_disagreement:.0%} of pairs")
    return ", ".join(parts)


def _set_label(summary: SetSummary) -> str:
    parts = [summary.name, f"{summary.size} entities"]
    if summary.reviewed:
        parts.append("✓ reviewed")
    if summary.disagreement is not None:
        parts.append(f"{summary.disagreement:.0%} pairs apart")
    return " · ".join(parts)


def _step(ids: Sequence[int], delta: int) -> None:
    current = st.session_state.get("sets_choice")
    index = ids.index(current) if current in ids else 0
    chosen = ids[max(0, min(len(ids) - 1, index + delta))]
    st.session_state["sets_choice"] = chosen
    st.session_state["sets_current"] = chosen


def choose_set(dataset: DatasetInfo) -> SetSummary | None:
    """The filtered set list in the sidebar with previous/next (keys P and N); None when nothing matches."""
    filters = set_filters(dataset)
    page = state.set_page(dataset.id, **filters.query(), limit=SET_LIST_LIMIT)
    if not page.items:
        st.sidebar.info("No set matches these filters: clear the search or widen the filters.")
        return None
    by_id = {s.id: s for s in page.items}
    ids = list(by_id)
    remembered = st.session_state.get("sets_current") or _int_param("set")
    current = st.session_state.get("sets_choice")
    # assigned on every run: a widget of the same key on another page would otherwise start from its default
    st.session_state["sets_choice"] = current if current in by_id else (remembered if remembered in by_id else ids[0])
    if page.total > SET_LIST_LIMIT:
        shown = f"showing {SET_LIST_LIMIT} of {page.total} matching sets; narrow the search"
    else:
        shown = "1 set matches" if page.total == 1 else f"{page.total} sets match"
    choice = st.sidebar.selectbox(f"Set ({shown})", ids, key="sets_choice", format_func=lambda i: _set_label(by_id[i]))
    left, right = st.sidebar.columns(2)
    position = ids.index(choice)
    left.button("Previous", key="sets_prev", on_click=_step, args=(ids, -1), disabled=position == 0,
                shortcut="P", width="stretch")
    right.button("Next", key="sets_next", on_click=_step, args=(ids, 1), disabled=position == len(ids) - 1,
                 shortcut="N", width="stretch")
    st.session_state["sets_current"] = choice
    st.session_state["sets_ids"] = ids
    st.query_params["set"] = str(choice)
    next_useful_button(dataset)
    return by_id[choice]


def _to_next_useful(dataset_id: int) -> None:
    """Move the set picker to the most useful set of the review queue (among those the list shows) that is not on
    screen and was not on screen at an earlier press (once all have been: the most useful other one)."""
    from db import review_queue

    shown = set(st.session_state.get("sets_ids") or [])
    current = st.session_state.get("sets_current")
    seen: set[int] = st.session_state.setdefault("sets_queue_seen", set())  # sets on screen when it was pressed
    if current is not None:
        seen.add(current)
    queue = [item.set_id for item in state.read(lambda session: review_queue(session, dataset_id))
             if item.set_id in shown and item.set_id != current]
    chosen = next((i for i in queue if i not in seen), queue[0] if queue else None)
    if chosen is None:
        st.session_state["pickers_queue_flash"] = (
            "No other set of this list is in the review queue: the queue holds the unreviewed sets the active "
            "model has clustered (run it on the dataset from the Data page).")
        return
    seen.add(chosen)
    st.session_state["sets_choice"] = chosen
    st.session_state["sets_current"] = chosen


def next_useful_button(dataset: DatasetInfo) -> None:
    """The sidebar's "Next most useful set" (key U): the review queue's next set (model uncertainty and
    disagreement with the other clusterings; see :func:`db.review_queue`)."""
    st.sidebar.button("Next most useful set", key="sets_next_useful", on_click=_to_next_useful, args=(dataset.id,),
                      shortcut="U", icon=":material/priority_high:", width="stretch",
                      help="Jump to the set whose review is likely to help the model most: where the active model "
                           "hesitated (merges near its threshold) or disagrees with the teacher, the reference or "
                           "an earlier model. Reviewed sets are skipped.")
    flash = st.session_state.pop("pickers_queue_flash", None)
    if flash:
        st.sidebar.info(flash)


def advance_set() -> None:
    """Move the set picker to the next set of the list it shows (call from a button's ``on_click``)."""
    ids = st.session_state.get("sets_ids") or []
    if ids:
        _step(ids, 1)
