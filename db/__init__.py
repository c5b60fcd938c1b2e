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
:mod:`db.export` (best labels to train/val/test files), :mod:`db.exchange` (sets with who/when
for download; teacher labels imported from a file), :mod:`db.thresholds` (a model's threshold re-chosen per dataset),
:mod:`db.users` (login users and roles). The job queue is :mod:`jobs`.
"""

from cactus.lazy import lazy_getattr

# each name's module, imported on first use: `import db.commands` (the `cactus --help` plugin) stays free
# of SQLAlchemy
_LAZY = {
    "add_clustering": "db.clusterings",
    "get_clustering": "db.clusterings",
    "latest_clusterings": "db.clusterings",
    "pair_disagreement": "db.clusterings",
    "named_clusterings": "db.clusterings",
    "review_queue": "db.review_order",
    "next_in_queue": "db.review_order",
    "ImportSummary": "db.datasets",
    "create_dataset": "db.datasets",
    "delete_dataset": "db.datasets",
    "find_dataset": "db.datasets",
    "get_dataset": "db.datasets",
    "import_dataset_folder": "db.datasets",
    "import_sets": "db.datasets",
    "import_sets_file": "db.datasets",
    "list_datasets": "db.datasets",
    "store_is_empty": "db.datasets",
    "accept_clustering": "db.edits",
    "apply_edit": "db.edits",
    "edit_history": "db.edits",
    "edit_stacks": "db.edits",
    "rebuild_human_clustering": "db.edits",
    "redo": "db.edits",
    "start_clustering": "db.edits",
    "undo": "db.edits",
    "ConflictError": "db.errors",
    "EditError": "db.errors",
    "NotFoundError": "db.errors",
    "AccessError": "db.errors",
    "StoreError": "db.errors",
    "TeacherImport": "db.exchange",
    "import_teacher_labels": "db.exchange",
    "sets_csv": "db.exchange",
    "sets_for_download": "db.exchange",
    "sets_jsonl": "db.exchange",
    "ExportSummary": "db.export",
    "LabelSummary": "db.export",
    "best_labels": "db.export",
    "export_labels": "db.export",
    "label_summary": "db.export",
    "Create": "db.partition",
    "Delete": "db.partition",
    "Edit": "db.partition",
    "Merge": "db.partition",
    "Move": "db.partition",
    "Partition": "db.partition",
    "Rename": "db.partition",
    "Split": "db.partition",
    "activate_model": "db.registry",
    "active_model": "db.registry",
    "deactivate_models": "db.registry",
    "delete_model": "db.registry",
    "get_model": "db.registry",
    "list_models": "db.registry",
    "refresh_threshold": "db.registry",
    "register_model": "db.registry",
    "AppliedCut": "db.thresholds",
    "DatasetThreshold": "db.thresholds",
    "applied_cut": "db.thresholds",
    "clear_dataset_threshold": "db.thresholds",
    "dataset_threshold": "db.thresholds",
    "set_dataset_threshold": "db.thresholds",
    "threshold_truth": "db.thresholds",
    "database_url": "db.session",
    "get_engine": "db.session",
    "session_scope": "db.session",
    "STORE_UNAVAILABLE": "db.session",
    "Session": "db.session",
    "printable_url": "db.session",
    "dataset_set_ids": "db.sets",
    "get_set": "db.sets",
    "list_sets": "db.sets",
    "load_entity_sets": "db.sets",
    "mark_reviewed": "db.sets",
    "set_size_range": "db.sets",
    "set_sizes": "db.sets",
    "set_split": "db.sets",
    "sets_lacking": "db.sets",
    "UserInfo": "db.users",
    "add_user": "db.users",
    "allows": "db.users",
    "ensure_admin": "db.users",
    "list_users": "db.users",
    "remove_user": "db.users",
    "require": "db.users",
    "role_of": "db.users",
    "ClusteringView": "db.views",
    "DatasetInfo": "db.views",
    "EditView": "db.views",
    "ModelInfo": "db.views",
    "SetDetail": "db.views",
    "SetPage": "db.views",
    "SetSummary": "db.views",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
