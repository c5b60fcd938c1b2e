"""Data: upload entity sets (a sets JSONL file, a CSV, or pasted text), check them, and save them as a dataset;
the datasets already in the store; download a dataset's sets with their best clustering; import the teacher's
clusterings from a `cactus label` file; the bundled demo."""

from __future__ import annotations

import streamlit as st

from app import bootstrap, chrome, job_monitor, pickers, state, uploads
from app.text import count
from app.uploads import ParsedUpload
from cactus.data import DataError
from db import (
    DatasetInfo,
    create_dataset,
    delete_dataset,
    import_sets,
    import_teacher_labels,
    sets_csv,
    sets_for_download,
    sets_jsonl,
)
from db.errors import AccessError, StoreError
from jobs.base import JobParamsError
from jobs.queue import enqueue

EXAMPLES = {
    "sets JSONL": '{"id": "s1", "entities": [{"id": "p1", "text": "glue stick"}, {"id": "p2", "text": "hot glue gun"}, '
                  '{"id": "p3", "text": "candle wick"}], "clusters": [[0, 1], [2]], "cluster_names": ["Glue", '
                  '"Candles"]}\n{"id": "s2", "entities": [{"id": "q1", "text": "beeswax sheets"}, {"id": "q2", '
                  '"text": "soy wax flakes"}]}',
    "CSV": "set_id,text,cluster\ns1,glue stick,Glue\ns1,hot glue gun,Glue\ns1,candle wick,Candles\n"
           "s2,beeswax sheets,\ns2,soy wax flakes,",
    "text": "glue stick\nhot glue gun\ncandle wick\n\nbeeswax sheets\nsoy wax flakes",
}
SPLIT_CHOICES = {"file": "as the file says (a \"split\" key), else unassigned", "unassigned": "unassigned (dealt "
                 "into train/val/test when a model is trained)", "train": "train", "val": "validation", "test": "test"}


@st.cache_data(max_entries=4, show_spinner="Reading the sets…")
def read_upload(name: str, data: bytes) -> ParsedUpload:
    return uploads.parse_upload(name, data)


def formats_help() -> None:
    with st.expander("Formats"):
        st.markdown("**Sets JSONL**: one set a line; `clusters` (entity positions) and `cluster_names` are optional "
                    "and become reference labels. **CSV**: a header `set_id,text[,cluster]`, one entity a row. "
                    "**Text**: one entity a line, a blank line between sets.")
        for name, example in EXAMPLES.items():
            st.caption(name)
            st.code(example, language="json" if name == "sets JSONL" else "text")


def choose_input() -> ParsedUpload | None:
    """The sets from an upload or from pasted text, validated; None (with a message) when there are none."""
    source = st.segmented_control("Add sets from", ["a file", "pasted text"], default="a file", key="data_source")
    try:
        if source == "pasted text":
            text = st.text_area("One entity a line, a blank line between sets", height=220, key="data_paste",
                                placeholder=EXAMPLES["text"])
            prefix = st.text_input("Name the sets", value="set", key="data_prefix",
                                   help="Sets are called PREFIX-1, PREFIX-2, …")
            if not text.strip():
                st.info("Paste some sets above to preview them.")
                return None
            return uploads.parse_text(text, prefix=prefix.strip() or "set")
        upload = st.file_uploader("Sets file (.jsonl, .csv or .txt)", type=["jsonl", "json", "ndjson", "csv", "tsv",
                                                                          "txt"],
                                  key=f"data_upload_{st.session_state.get('data_uploads', 0)}")
        if upload is None:
            st.info("Choose a file to preview its sets. Nothing is saved until you press **Save**.")
            return None
        return read_upload(upload.name, upload.getvalue())
    except uploads.UploadProblems as exc:
        shown = "\n".join(f"- {problem}" for problem in exc.problems[:50])
        more = f"\n\n... and {len(exc.problems) - 50} more." if len(exc.problems) > 50 else ""
        st.error(f"**{len(exc.problems)} problems in {exc.path}**; fix them and try again, nothing was saved:\n\n"
                 f"{shown}{more}", icon=":material/error:")
        return None
    except DataError as exc:
        st.error(f"**{exc}**\n\nFix this and try again; nothing was saved.", icon=":material/error:")
        return None


def preview(parsed: ParsedUpload) -> None:
    columns = st.columns(4)
    columns[0].metric("Sets", len(parsed.sets), border=True)
    columns[1].metric("Entities", parsed.entities, border=True)
    columns[2].metric("With reference clusters", parsed.labelled, border=True)
    columns[3].metric("Largest set", max(len(s) for s in parsed.sets), border=True)
    st.dataframe(uploads.preview_rows(parsed.sets), hide_index=True, width="stretch", height=260,
                 column_config={"texts": st.column_config.TextColumn("first entities", width="large")})
    if len(parsed.sets) > 200:
        st.caption(f"The first 200 of {len(parsed.sets)} sets.")


def save_form(parsed: ParsedUpload) -> None:
    found = state.datasets()
    noun = st.radio("The entities are", ["products", "queries"], horizontal=True, key="data_noun",
                    help="Used in the teacher's prompt.")
    target = st.radio("Save into", ["a new dataset", "an existing dataset"], horizontal=True, key="data_target",
                      disabled=not found) if found else "a new dataset"
    if target == "a new dataset":
        name = st.text_input("Dataset name", value=uploads.default_dataset_name(parsed.source), key="data_name")
        existing: DatasetInfo | None = None
    else:
        by_id = {d.id: d for d in found}
        existing = by_id[st.selectbox("Dataset", list(by_id), format_func=lambda i: by_id[i].name, key="data_into")]
        name = existing.name
    split = st.selectbox("Split of these sets", list(SPLIT_CHOICES), format_func=SPLIT_CHOICES.__getitem__,
                         key="data_split")
    if not st.button("Save", type="primary", icon=":material/save:", key="data_save"):
        return
    if not name.strip():
        st.error("Give the dataset a name.")
        return
    bar = st.progress(0.0, text="Saving…")
    try:
        with state.writing("admin", "Uploading data") as session:
            dataset_id = existing.id if existing is not None else create_dataset(session, name, noun).id
            summary = import_sets(session, dataset_id, parsed.sets, split=None if split == "file" else split,
                                  producer=parsed.source,
                                  on_progress=lambda done, total: bar.progress(done / total,
                                                                               text=f"Saved {done}/{total} sets"))
    except (StoreError, DataError) as exc:
        bar.empty()
        st.error(f"Nothing was saved: {exc}")
        return
    st.session_state["data_uploads"] = st.session_state.get("data_uploads", 0) + 1
    st.session_state["dataset_current"] = summary.dataset_id
    st.session_state.pop("dataset_choice", None)
    st.session_state["data_saved"] = (summary.dataset_id, name, summary.sets, summary.entities, summary.labelled)
    st.rerun()


BATCH_OFFER_SETS = 20
"""From this many sets on, the teacher may be asked through the Message Batches API."""


def saved_message() -> None:
    saved = st.session_state.get("data_saved")
    if not saved:
        return
    dataset_id, name, sets, entities, labelled = saved
    st.success(f"Saved {count(sets, 'set')} ({count(entities, 'entity', 'entities')}, {labelled} with reference "
               f"clusters) into {name!r}.")
    with st.container(horizontal=True):
        chrome.link_to("review", "Review them")
        if state.teacher_key_set():
            batch = sets >= BATCH_OFFER_SETS and st.checkbox(
                "through the Message Batches API (half price, slower)", key="data_label_batch",
                help="The sets go to Claude in one batch, billed at half price; results come within 24 hours "
                     "(usually much sooner), and the job keeps polling until they do.")
            if st.button("Ask the teacher to cluster them", icon=":material/psychology:", key="data_label"):
                params = {"dataset_id": dataset_id, "sets": "missing", **({"batch": True} if batch else {})}
                job = state.queue_job(lambda session: enqueue(session, "label", params),
                                      needs="admin", action="Asking the teacher")
                if job is not None:
                    st.session_state["data_label_job"] = job.id
        else:
            st.caption("Set ANTHROPIC_API_KEY where you start `cactus app` to let the teacher (Claude) cluster them.")
    if st.session_state.get("data_label_job"):
        job_monitor.job_monitor(st.session_state["data_label_job"], key="data_label")


def demo_offer(found: list[DatasetInfo]) -> None:
    if any(d.name == bootstrap.DEMO_DATASET for d in found):
        return
    with st.container(border=True):
        st.markdown("**The bundled demo**: 300 sets of toy-product titles with reference labels (from the CC BY-SA "
                    "\"Toy Products on Amazon\" sample), and a small demo model trained on them in about a minute.")
        train = st.checkbox("Also train the demo model (CPU, about a minute)", value=bootstrap.minilm_available(),
                            disabled=not bootstrap.minilm_available(), key="data_demo_train")
        if st.button("Load the demo", icon=":material/toys:", key="data_demo"):
            bar = st.progress(0.0, text="Loading the demo…")
            try:
                with state.writing("admin", "Loading the demo") as session:
                    setup = bootstrap.import_demo(session, train=train, on_progress=lambda done, total: bar.progress(
                        done / total, text=f"Saved {done}/{total} sets"))
            except (StoreError, DataError, JobParamsError) as exc:
                st.error(f"The demo could not be loaded: {exc}")
                return
            st.session_state["dataset_current"] = setup.summary.dataset_id
            st.session_state.pop("dataset_choice", None)
            st.rerun()


def datasets_table(found: list[DatasetInfo]) -> None:
    st.subheader("Datasets in the store")
    if not found:
        st.info("No datasets yet: add sets above, or load the demo.")
        return
    st.dataframe([{"dataset": d.name, "of": d.noun, "sets": d.sets, "reviewed": d.reviewed,
                   "created": d.created_at.astimezone().strftime("%Y-%m-%d %H:%M")} for d in found],
                 hide_index=True, width="stretch")
    with st.expander("Delete a dataset"):
        by_id = {d.id: d for d in found}
        chosen = st.selectbox("Dataset", list(by_id), format_func=lambda i: by_id[i].name, key="data_delete_choice")
        sure = st.checkbox(f"Delete {by_id[chosen].name!r} with its sets, clusterings and edit logs (models stay)",
                           key="data_delete_sure")
        if st.button("Delete", disabled=not sure, key="data_delete", icon=":material/delete:"):
            try:
                with state.writing("admin", "Deleting datasets") as session:
                    delete_dataset(session, chosen)
            except StoreError as exc:
                st.error(str(exc))
                return
            st.session_state.pop("dataset_current", None)
            st.rerun()


EXPORT_FORMATS = {"sets JSONL": ("jsonl", "application/jsonl"), "CSV": ("csv", "text/csv")}


def download_panel(dataset: DatasetInfo) -> None:
    """Download the dataset's sets (all, or those the set list's filters show) with their best clustering."""
    filters = pickers.remembered_filters(dataset)
    narrowed = pickers.describe_filters(filters)
    scopes = {"all": f"every set of {dataset.name} ({count(dataset.sets, 'set')})"}
    if narrowed:
        scopes["filter"] = f"the sets the set list's filters show ({narrowed})"
    left, right = st.columns([3, 1])
    scope = left.radio("Download", list(scopes), format_func=scopes.__getitem__, key="data_export_scope")
    kind = right.radio("as", list(EXPORT_FORMATS), key="data_export_format")
    st.caption("Each set comes with its best clustering (a person's, else the teacher's, else the active model's, "
               "else the reference labels), who made it and when, its split and whether it was reviewed.")
    if st.button("Prepare the download", icon=":material/download:", key="data_export"):
        ids = [s.id for s in state.set_page(dataset.id, **filters.query(), limit=10**7).items] \
            if scope == "filter" else None
        sets = state.read(lambda session: sets_for_download(session, dataset.id, ids))
        suffix, mime = EXPORT_FORMATS[kind]
        text = sets_jsonl(sets) if kind == "sets JSONL" else sets_csv(sets)
        name = f"{dataset.name}{'-filtered' if scope == 'filter' else ''}.{suffix}"
        st.session_state["data_export_file"] = (dataset.id, name, text.encode(), mime, len(sets))
    prepared = st.session_state.get("data_export_file")
    if prepared and prepared[0] == dataset.id:
        _, name, data, mime, sets = prepared
        st.download_button(f"Download {name} ({count(sets, 'set')})", data, file_name=name, mime=mime,
                           icon=":material/file_download:", key="data_export_download")


def teacher_import_panel(dataset: DatasetInfo) -> None:
    """Store the clusterings of a `cactus label` output file as the teacher's, all or nothing."""
    upload = st.file_uploader("Teacher labels: the file `cactus label SETS.jsonl --out LABELLED.jsonl` wrote",
                              type=["jsonl", "json", "ndjson"],
                              key=f"data_teacher_upload_{st.session_state.get('data_teacher_uploads', 0)}",
                              help="Sets are matched to this dataset's sets by their id, entities by their id; "
                                   "entities the teacher left out stay as singletons, as after a label job.")
    if upload is None:
        return
    try:
        parsed = read_upload(upload.name, upload.getvalue())
    except DataError as exc:
        st.error(f"**{exc}**\n\nNothing was imported.", icon=":material/error:")
        return
    labelled = sum(1 for s in parsed.sets if s.clusters is not None)
    st.caption(f"{upload.name}: {count(len(parsed.sets), 'set')}, {labelled} with clusters.")
    if not st.button(f"Import them as the teacher's clusterings of {dataset.name}", type="primary",
                     icon=":material/upload:", key="data_teacher_import"):
        return
    try:
        with state.writing("admin", "Importing teacher labels") as session:
            summary = import_teacher_labels(session, dataset.id, parsed.sets, source_name=upload.name)
    except (StoreError, AccessError) as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.session_state["data_teacher_uploads"] = st.session_state.get("data_teacher_uploads", 0) + 1
    st.session_state["data_teacher_imported"] = (dataset.name, summary.sets, summary.unplaced, upload.name)
    st.rerun()


def exchange_section(found: list[DatasetInfo]) -> None:
    st.subheader("Download sets, import teacher labels")
    if not found:
        return
    by_id = {d.id: d for d in found}
    current = st.session_state.get("dataset_current")
    if st.session_state.get("data_exchange_dataset") not in by_id:
        st.session_state["data_exchange_dataset"] = current if current in by_id else found[0].id
    dataset = by_id[st.selectbox("Dataset", list(by_id), format_func=lambda i: by_id[i].name,
                                 key="data_exchange_dataset")]
    imported = st.session_state.pop("data_teacher_imported", None)
    if imported:
        name, sets, unplaced, source = imported
        st.success(f"Imported the teacher's clusterings of {count(sets, 'set')} of {name!r} from {source}"
                   + (f" ({count(unplaced, 'entity', 'entities')} it left out stay alone)." if unplaced else "."))
    download, upload = st.tabs(["Download", "Import teacher labels"])
    with download:
        download_panel(dataset)
    with upload:
        teacher_import_panel(dataset)


chrome.page_intro("data", "Add entity sets (product titles, search queries, …) to the store; sets that come with "
                  "clusters keep them as reference labels.")
chrome.role_note("admin", "adding or deleting data")
job_monitor.active_jobs_banner()
saved_message()
parsed = choose_input()
formats_help()
if parsed is not None:
    st.subheader(f"Preview of {parsed.source}")
    preview(parsed)
    save_form(parsed)
st.divider()
existing = state.datasets()
demo_offer(existing)
datasets_table(existing)
exchange_section(existing)
