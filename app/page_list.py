"""The workbench's pages, defined once: where each lives, its title, icon and navigation group.

``app/main.py`` builds the navigation from :data:`PAGES`; pages introduce themselves with
:func:`app.chrome.page_intro` and link to each other with :func:`app.chrome.link_to`, both by key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    """One page of the workbench."""

    key: str
    path: str  # relative to app/main.py, as Streamlit wants it
    title: str
    icon: str
    group: str  # the navigation section it is listed under
    default: bool = False


#: The browser tab's icon on every page. An emoji becomes an inline SVG; a ``:material/...:`` icon there would be
#: fetched from fonts.gstatic.com, a failed request on every page of a workbench without internet access.
FAVICON = "🌵"

PAGES: tuple[PageEntry, ...] = (
    PageEntry("review", "app_pages/review.py", "Review", ":material/compare:", "Clusterings", default=True),
    PageEntry("correct", "app_pages/correct.py", "Correct", ":material/edit_note:", "Clusterings"),
    PageEntry("data", "app_pages/data.py", "Data", ":material/upload_file:", "Clusterings"),
    PageEntry("corpus", "app_pages/corpus.py", "Corpus", ":material/scatter_plot:", "Clusterings"),
    PageEntry("train", "app_pages/train.py", "Train", ":material/model_training:", "Models"),
    PageEntry("models", "app_pages/models.py", "Models", ":material/deployed_code:", "Models"),
    PageEntry("evaluate", "app_pages/evaluate.py", "Evaluate", ":material/leaderboard:", "Models"),
)
BY_KEY: dict[str, PageEntry] = {p.key: p for p in PAGES}


def page(key: str) -> PageEntry:
    """The page called ``key`` ("review", "train", ...)."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"no page {key!r}; the pages are {', '.join(BY_KEY)}") from None
