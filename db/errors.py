"""Errors of the store, each with a message that says what to do."""

from __future__ import annotations

from cactus.errors import CactusError


class StoreError(CactusError):
    """The store cannot do what was asked (bad input, missing row, conflicting state)."""


class NotFoundError(StoreError, LookupError):
    """A dataset, set, clustering, model or job id that is not in the store."""


class ConflictError(StoreError):
    """The request clashes with the store's state (a name taken, nothing left to undo, a stale edit)."""


class EditError(StoreError, ValueError):
    """An edit that does not apply to the current clustering (unknown cluster, empty selection)."""


class AccessError(StoreError, PermissionError):
    """The signed-in user's role does not allow the action (or they are not a user of this store)."""
