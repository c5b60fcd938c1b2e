"""Who is using the workbench and what they may do: login through ``st.login`` when it is configured.

- Login is on when ``cactus app`` found an ``[auth]`` section in the secrets file (it sets ``CACTUS_LOGIN`` to
  ``required``, or ``off``); run directly with ``streamlit run``, the secrets file decides.
- With login on, every page needs a signed-in user who is a user of the store (``cactus users add``); the user's
  email (else the provider's subject) is the author of their edits, jobs and models, and their role
  (:mod:`db.users`) decides what they may change. :func:`require` is checked in every write path
  (:func:`app.state.writing`, :func:`app.state.queue_job`), not only by hiding buttons.
- Without login (the local mode, listening on 127.0.0.1) the user is an admin named by ``CACTUS_AUTHOR`` or the
  name typed in the sidebar.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Any

import streamlit as st

from db import STORE_UNAVAILABLE, database_url, role_of, session_scope
from db import require as require_role

LOGIN_ENV = "CACTUS_LOGIN"


@dataclass(frozen=True)
class Identity:
    """The person using this browser session."""

    name: str  # the author of their edits, jobs and models
    role: str | None  # None: signed in, but not a user of this store
    signed_in: bool  # False in the local mode without login


def auth_settings() -> dict[str, Any] | None:
    """The secrets file's ``[auth]`` section, None when there is none (or no secrets file)."""
    try:
        if "auth" not in st.secrets:
            return None
        return dict(st.secrets["auth"])
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        return None


def login_required() -> bool:
    """True when every page needs a signed-in user."""
    mode = os.environ.get(LOGIN_ENV, "")
    if mode == "required":
        return True
    if mode == "off":
        return False
    return auth_settings() is not None


def local_name() -> str:
    """The author in the local mode: the name typed in the sidebar, else ``CACTUS_AUTHOR``, else the login name."""
    typed = str(st.session_state.get("author") or "").strip()
    return typed or os.environ.get("CACTUS_AUTHOR") or getpass.getuser() or "reviewer"


def signed_in_name() -> str:
    """The signed-in identity as the store keeps it: the email, else the subject, lower-cased."""
    return str(st.user.get("email") or st.user.get("sub") or "").strip().lower()


def identity() -> Identity:
    """Who is using this session (looked up in the store on every call: a removed user loses access at once)."""
    if not login_required():
        return Identity(local_name(), "admin", signed_in=False)
    if not st.user.is_logged_in:
        return Identity("", None, signed_in=False)
    name = signed_in_name()
    with session_scope(database_url(), readonly=True) as session:
        return Identity(name, role_of(session, name), signed_in=True)


def require(needed: str, action: str) -> Identity:
    """The current user, when their role allows ``action`` (e.g. "saving corrections").

    Raises:
        AccessError: they may not (the pages show its message).
    """
    who = identity()
    require_role(who.role, needed, who=who.name or "a signed-out visitor", action=action)
    return who


def _login_buttons(auth: dict[str, Any]) -> None:
    providers = [key for key, value in auth.items() if isinstance(value, dict)]
    if not providers:
        st.button("Log in", type="primary", icon=":material/login:", on_click=st.login, key="access_login")
    for provider in providers:
        st.button(f"Log in with {provider}", type="primary", icon=":material/login:", on_click=st.login,
                  args=(provider,), key=f"access_login_{provider}")


def gate() -> Identity:
    """Let the session in, or show why not and stop: the login page, or "ask an admin to add you"."""
    if not login_required():
        return identity()
    auth = auth_settings()
    if auth is None:
        st.error("Login is required, but the secrets file has no [auth] section: configure login (see the README, "
                 "\"Login and roles\") and restart `cactus app`.", icon=":material/lock:")
        st.stop()
    if not st.user.is_logged_in:
        st.title("cactus")
        st.write("Sign in to use the workbench.")
        _login_buttons(auth)
        st.stop()
    try:
        who = identity()
    except STORE_UNAVAILABLE as exc:
        st.error(f"The store cannot be opened: {str(exc).splitlines()[0]}", icon=":material/database:")
        st.stop()
    if who.role is None:
        st.title("Ask an admin to add you")
        st.warning(f"You are signed in as **{who.name}**, who is not a user of this workbench yet. Ask an admin to "
                   f"add you: `cactus users add {who.name} --role annotator` (or `--role viewer`).",
                   icon=":material/person_add:")
        st.button("Log out", on_click=st.logout, key="access_logout_unknown")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{who.name}** · {who.role}")
        st.button("Log out", on_click=st.logout, icon=":material/logout:", key="access_logout")
    return who
