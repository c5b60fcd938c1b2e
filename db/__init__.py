"""The store: datasets, entity sets, clusterings, the edit log, models and jobs, in SQLite or PostgreSQL.

Open a session with :func:`session_scope` and pass it to the functions below; each takes the session
first and never commits on its own, so a block of calls is one transaction::

    from db import session_scope, list_sets, apply_edit, Move

    with session_scope() as session:
        page = list_sets(session, dataset_id, reviewed=False, min_disagreement=0.1)
        apply_edit(session, page.items[0].id, Move(entity=3, to=0), author="ana")

Modules: :mod:`db.session` (engines, sessions, ``CACTUS_DB_URL``), :mod:`db.migrate` (Alembic),
:mod:`db.models` (tables), :mod:`db.datasets` (create and import), :mod:`db.sets` (list, get, review),
:mod:`db.clusterings` (teacher, model and reference clusterings), :mod:`db.partition` and
:mod:`db.edits` (the human clustering, its edit log, undo and redo), :mod:`db.registry` (models),
:mod:`db.export` (best labels to train/val/test files). The job queue is :mod:`jobs`.
"""

from db.clusterings import add_clustering, get_clustering, latest_clusterings, pair_disagreement
from db.datasets import (
    ImportSummary,
    create_dataset,
    delete_dataset,
    find_dataset,
    get_dataset,
    import_dataset_folder,
    import_sets,
    import_sets_file,
    list_datasets,
    store_is_empty,
)
from db.edits import (
    accept_clustering,
    apply_edit,
    edit_history,
    edit_stacks,
    rebuild_human_clustering,
    redo,
    start_clustering,
    undo,
)
from db.errors import ConflictError, EditError, NotFoundError, StoreError
from db.export import ExportSummary, LabelSummary, best_labels, export_labels, label_summary
from db.partition import Create, Delete, Edit, Merge, Move, Partition, Rename, Split
from db.registry import (
    activate_model,
    active_model,
    deactivate_models,
    delete_model,
    get_model,
    list_models,
    refresh_threshold,
    register_model,
)
from db.session import STORE_UNAVAILABLE, Session, database_url, get_engine, printable_url, session_scope
from db.sets import (
    get_set,
    list_sets,
    load_entity_sets,
    mark_reviewed,
    set_size_range,
    set_sizes,
    set_split,
    sets_lacking,
)
from db.views import ClusteringView, DatasetInfo, EditView, ModelInfo, SetDetail, SetPage, SetSummary

__all__ = [
    "STORE_UNAVAILABLE",
    "ClusteringView",
    "ConflictError",
    "Create",
    "DatasetInfo",
    "Delete",
    "Edit",
    "EditError",
    "EditView",
    "ExportSummary",
    "ImportSummary",
    "LabelSummary",
    "Merge",
    "ModelInfo",
    "Move",
    "NotFoundError",
    "Partition",
    "Rename",
    "Session",
    "SetDetail",
    "SetPage",
    "SetSummary",
    "Split",
    "StoreError",
    "accept_clustering",
    "activate_model",
    "active_model",
    "add_clustering",
    "apply_edit",
    "best_labels",
    "create_dataset",
    "database_url",
    "deactivate_models",
    "delete_dataset",
    "delete_model",
    "edit_history",
    "edit_stacks",
    "export_labels",
    "find_dataset",
    "get_clustering",
    "get_dataset",
    "get_engine",
    "get_model",
    "get_set",
    "import_dataset_folder",
    "import_sets",
    "import_sets_file",
    "label_summary",
    "latest_clusterings",
    "list_datasets",
    "list_models",
    "list_sets",
    "load_entity_sets",
    "mark_reviewed",
    "pair_disagreement",
    "printable_url",
    "rebuild_human_clustering",
    "redo",
    "refresh_threshold",
    "register_model",
    "session_scope",
    "set_size_range",
    "set_sizes",
    "set_split",
    "sets_lacking",
    "start_clustering",
    "store_is_empty",
    "undo",
]
