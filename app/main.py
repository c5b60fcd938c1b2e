"""The workbench's entry point: the login gate and the page navigation (``cactus app`` runs it with Streamlit)."""

from __future__ import annotations

import streamlit as st

from app.access import gate
from app.page_list import FAVICON, PAGES


def run() -> None:
    """Build the navigation from :data:`app.page_list.PAGES` and run the page the user is on."""
    # before the navigation: otherwise the browser shows the page's :material/...: icon as the tab's icon, which
    # it fetches from fonts.gstatic.com (a failed request on every page when the workbench has no internet)
    st.set_page_config(page_icon=FAVICON, layout="wide")
    gate()  # with login on, every page needs a signed-in user of the store
    groups: dict[str, list] = {}
    for entry in PAGES:
        groups.setdefault(entry.group, []).append(
            st.Page(entry.path, title=entry.title, icon=entry.icon, default=entry.default))
    st.navigation(groups).run()


run()
