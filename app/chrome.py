"""Page chrome: each page's configuration, title and purpose, links between pages, and the author's name."""

from __future__ import annotations

import getpass
import os

import streamlit as st

from app import access, state
from app.page_list import FAVICON, page
from db import allows


def page_intro(key: str, purpose: str) -> None:
    """The page's configuration, title and purpose in a sentence; stops with the fix when the store is out of reach."""
    entry = page(key)
    st.set_page_config(page_title=f"{entry.title} · cactus", page_icon=FAVICON, layout="wide")
    st.title(entry.title)
    st.caption(purpose)
    problem = state.store_problem()
    if problem:
        st.error(problem, icon=":material/database:")
        st.stop()


def role_note(needed: str, what: str) -> None:
    """Say up front when the user's role does not allow this page's changes (the server refuses them anyway)."""
    who = access.identity()
    if not allows(who.role, needed):
        st.info(f"You can look, but {what} needs the {needed} role and you are a {who.role}: ask an admin.",
                icon=":material/visibility:")


def link_to(key: str, label: str, where: st.delta_generator.DeltaGenerator | None = None) -> None:
    """A link to another page, with that page's icon."""
    entry = page(key)
    (where if where is not None else st).page_link(entry.path, label=label, icon=entry.icon)


def keep(*keys: str) -> None:
    """Keep these widgets' values when the user goes to another page and back (Streamlit drops them otherwise)."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def author() -> str:
    """Who makes the edits (the edit log records it): the signed-in user when login is on; else the name in the
    sidebar, default ``CACTUS_AUTHOR`` or the login name."""
    if access.login_required():
        return access.identity().name
    if "author" not in st.session_state:
        st.session_state["author"] = os.environ.get("CACTUS_AUTHOR") or getpass.getuser() or "reviewer"
    keep("author")
    name = st.sidebar.text_input("Your name (kept in the edit log)", key="author").strip()
    return name or "reviewer"
