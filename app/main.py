"""The workbench's entry point: the page navigation, nothing else (``cactus app`` runs it with Streamlit)."""

from __future__ import annotations

import streamlit as st


def run() -> None:
    """Build the navigation and run the page the user is on."""
    pages = {
        "Clusterings": [
            st.Page("app_pages/review.py", title="Review", icon=":material/compare:", default=True),
            st.Page("app_pages/correct.py", title="Correct", icon=":material/edit_note:"),
            st.Page("app_pages/data.py", title="Data", icon=":material/upload_file:"),
        ],
        "Models": [
            st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
            st.Page("app_pages/models.py", title="Models", icon=":material/deployed_code:"),
            st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/leaderboard:"),
        ],
    }
    st.navigation(pages).run()


run()
