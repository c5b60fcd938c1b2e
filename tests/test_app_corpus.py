"""The Corpus page on a real store with the tiny model: every entity on a WebGL map coloured by its cluster within
its set, a sample (said so) above the point limit, and a click that opens the set on Review."""

from __future__ import annotations

import numpy as np

from app import corpus
from db import get_set, session_scope, set_sizes
from tests.app_helpers import open_app, plotly_array, plotly_specs, seed_store, texts_of


def test_the_map_draws_every_entity_coloured_by_its_cluster_within_its_set(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)  # teacher clusterings of every set
    with session_scope(app_env, readonly=True) as session:
        sizes = set_sizes(session, seeded.dataset_id)
    at = open_app("corpus")
    (spec,) = plotly_specs(at)
    (trace,) = spec["data"]
    assert trace["type"] == "scattergl"
    xy = np.stack([plotly_array(trace["x"]), plotly_array(trace["y"])], axis=1)
    assert xy.shape == (sum(sizes.values()), 2) and np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    assert [d[0] for d in trace["customdata"]] == [i for i, n in sizes.items() for _ in range(n)]
    assert "teacher cluster 1" in trace["hovertext"][0] and "set " in trace["hovertext"][0]
    assert f"{sum(sizes.values())} entities of 24 sets" in texts_of(at)
    assert "sample" not in texts_of(at)


def test_above_the_limit_whole_sets_are_sampled_and_the_page_says_so(app_env, tiny_model, tmp_path, monkeypatch):
    seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)
    monkeypatch.setattr(corpus, "MAX_POINTS", 20)
    at = open_app("corpus")
    (spec,) = plotly_specs(at)
    drawn = len(spec["data"][0]["customdata"])
    assert 0 < drawn <= 20
    assert "the map draws a sample of" in texts_of(at) and "at most 20 points" in texts_of(at)


def test_sampling_keeps_whole_sets_and_is_seeded():
    sizes = {1: 5, 2: 7, 3: 3, 4: 9, 5: 4}
    assert corpus.sample_sets(sizes, 100) == [1, 2, 3, 4, 5]
    chosen = corpus.sample_sets(sizes, 12)
    assert sum(sizes[i] for i in chosen) <= 12 and chosen == sorted(chosen) == corpus.sample_sets(sizes, 12)


def test_a_clicked_point_names_its_set():
    event = {"selection": {"points": [{"point_index": 4, "customdata": [17]}], "point_indices": [4]}}
    assert corpus.clicked_set(event) == 17
    assert corpus.clicked_set({"selection": {"points": []}}) is None
    assert corpus.clicked_set(None) is None


def test_the_corpus_page_without_a_model_says_what_to_do(app_env, tmp_path):
    seed_store(app_env, tmp_path / "ds")
    at = open_app("corpus")
    assert "no model is active" in texts_of(at)


def test_a_click_on_a_point_opens_its_set_on_review(app_env, tiny_model, tmp_path):
    seeded = seed_store(app_env, tmp_path / "ds", tiny_model, predict=False)
    at = open_app("corpus")
    at.session_state["sets_search"] = "no set has this"  # a filter that would hide the set is cleared
    wanted = seeded.set_ids[5]
    # what the chart's selection holds after a click on a point (the widget's value, as the browser sends it)
    at.session_state["corpus_map"] = {"selection": {"points": [{"customdata": [wanted]}], "point_indices": [0],
                                                    "box": [], "lasso": []}}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["sets_choice"] == wanted and at.session_state["sets_search"] == ""
    page = texts_of(at)
    assert "Compare how the teacher" in page  # Review's introduction
    with session_scope(app_env, readonly=True) as session:
        assert f"Set {get_set(session, wanted).name}" in page
