"""The cactus workbench: a Streamlit app over the store (:mod:`db`), the job queue (:mod:`jobs`) and the library.

``app/main.py`` builds the navigation; ``app/app_pages/*.py`` render one page each. The logic they show lives in
modules without Streamlit, importable and tested on their own: :mod:`app.uploads` (reading uploaded sets),
:mod:`app.compare` (agreement between clusterings, colours shared by cards and heatmaps), :mod:`app.heatmap`
(the similarity figure), :mod:`app.bootstrap` (the demo on first start), :mod:`app.page_list` (the pages, their
titles and icons, defined once). :mod:`app.state` (cached queries and models) and the pieces of UI that several
pages share are the Streamlit side: :mod:`app.access` (login, the user and their role), :mod:`app.chrome` (page
intro, links, author), :mod:`app.pickers` (dataset and set pickers), :mod:`app.cluster_cards`,
:mod:`app.job_monitor`, :mod:`app.charts` and :mod:`app.score_tables`.

Start it with ``cactus app`` (see :mod:`app.commands`), which also starts a worker and reads the top-level
``streamlit_config.toml``.
"""
