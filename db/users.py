"""Who may use the workbench when login is on, and what each role may do.

Roles, each allowed what the ones before it are: ``viewer`` reads; ``annotator`` also corrects clusterings, saves
them and runs the model on sets; ``admin`` also calls the teacher, trains, activates and deletes models and datasets,
and uploads data. A user is the identity the login provider vouches for: its email, else its subject (``sub``).
The first admin is added from the command line (``cactus users add EMAIL --role admin``) or the ``CACTUS_ADMIN``
setting (:func:`ensure_admin`), never by whoever signs in first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from db.errors import AccessError, NotFoundError, StoreError
from db.models import ROLES, UserRow
from db.session import Session

MAX_EMAIL_LENGTH = 320


@dataclass(frozen=True)
class UserInfo:
    """A user of the store."""

    email: str
    role: str
    created_at: datetime


def normalise_email(email: str) -> str:
    """The identity as stored: trimmed and lower-cased (providers differ in case, people do not mean a new user).

    Raises:
        StoreError: empty, too long or with spaces inside.
    """
    cleaned = email.strip().lower() if isinstance(email, str) else ""
    if not cleaned or any(c.isspace() for c in cleaned):
        raise StoreError(f"{email!r} is not a user name: give the email (or subject) the login provider reports")
    if len(cleaned) > MAX_EMAIL_LENGTH:
        raise StoreError(f"user names are at most {MAX_EMAIL_LENGTH} characters")
    return cleaned


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`.

    Raises:
        StoreError: any other value, with the choices.
    """
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
    return role


def allows(role: str | None, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may (None, an unknown user, may do nothing)."""
    check_role(needed)
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def require(role: str | None, needed: str, *, who: str = "this user", action: str = "this") -> None:
    """Refuse unless ``role`` allows what ``needed`` allows (``action`` names what was tried, e.g. "saving").

    Raises:
        AccessError: with the role needed, the role held and how to get it.
    """
    if not allows(role, needed):
        held = f"the {role} role" if role else "no role in this store"
        raise AccessError(f"{action} needs the {needed} role, and {who} has {held}; ask an admin to run "
                          f"`cactus users add {who} --role {needed}`")


def add_user(session: Session, email: str, role: str) -> tuple[UserInfo, bool]:
    """Add a user, or change an existing user's role; returns the user and whether it is new."""
    email = normalise_email(email)
    role = check_role(role)
    row = session.scalar(select(UserRow).where(UserRow.email == email))
    created = row is None
    if row is None:
        row = UserRow(email=email, role=role)
        session.add(row)
    else:
        row.role = role
    session.flush()
    return UserInfo(row.email, row.role, row.created_at), created


def remove_user(session: Session, email: str) -> None:
    """Remove a user (they can no longer sign in; their edits keep their name).

    Raises:
        NotFoundError: no such user.
    """
    email = normalise_email(email)
    row = session.scalar(select(UserRow).where(UserRow.email == email))
    if row is None:
        raise NotFoundError(f"no user {email!r}; `cactus users list` shows them")
    session.delete(row)
    session.flush()


def list_users(session: Session) -> list[UserInfo]:
    """Every user, admins first, then by email."""
    rows = session.scalars(select(UserRow)).all()
    rows = sorted(rows, key=lambda r: (-ROLES.index(r.role), r.email))
    return [UserInfo(r.email, r.role, r.created_at) for r in rows]


def role_of(session: Session, email: str) -> str | None:
    """The role of the user ``email``, None when they are not a user of this store."""
    try:
        email = normalise_email(email)
    except StoreError:
        return None
    return session.scalar(select(UserRow.role).where(UserRow.email == email))


def ensure_admin(session: Session, email: str) -> bool:
    """Make ``email`` an admin (the ``CACTUS_ADMIN`` setting); True when that changed anything."""
    if role_of(session, email) == "admin":
        return False
    add_user(session, email, "admin")
    return True
