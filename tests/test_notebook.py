"""The notebook model: trained exactly as the student notebook did, so its collapse can be measured beside the fix."""

from __future__ import annotations

import numpy as np
import pytest
from factories import corpus_of, playlist, track
from recommender_checks import RecommenderBaseTestMixin

from songrec import explore
from songrec.corpus import Corpus
from songrec.models import make_model
from songrec.models.base import Recommender
from songrec.models.notebook import INPUT_TRACKS, MIN_TRACKS, NotebookRecommender, NotebookSettings
from songrec.settings import SettingError, specs

ALL_FIXES = [cause.key for cause in explore.NOTEBOOK_CAUSES]


class TestNotebookWithEveryFix(RecommenderBaseTestMixin):
    """With every cause fixed, the notebook's model is a working recommender like any other."""

    min_genre_share = 0.15
    """From 300 playlists of 30+ tracks (the notebook uses no others) and its N(0, 1) embeddings, ten
    epochs find genres only weakly (0.2 measured; the demo base rate of a genre is about 0.1)."""

    def make_model(self) -> Recommender:
        return make_model("notebook", **explore.notebook_params(ALL_FIXES))

    def test_trains_on_minibatches_of_every_training_set(self, model: NotebookRecommender, fit_corpus: Corpus) -> None:
        playlists = int((fit_corpus.lengths() >= MIN_TRACKS).sum())
        s = model.settings
        assert len(model.losses) == s.epochs * s.training_sets * -(-playlists // s.batch_size)


def test_defaults_are_the_notebooks() -> None:
    s = NotebookSettings()
    assert (s.learning_rate, s.epochs, s.training_sets, s.files, s.optimizer) == (1e-5, 2, 1, 0, "sgd")
    assert (s.embedding_dim, s.hidden_dim, s.tied_head) == (50, 100, False)
    assert not s.embeddings_in_step and not s.minibatches
    assert {spec.name for spec in specs(NotebookSettings)} >= {"learning_rate", "files", "training_sets", "epochs"}


def test_settings_are_checked_with_a_message_naming_them() -> None:
    with pytest.raises(SettingError, match="notebook setting training_sets must be from 1 to 10"):
        make_model("notebook", training_sets=11)
    with pytest.raises(SettingError, match="unknown notebook setting hidden"):
        make_model("notebook", hidden=3)


def _long_playlists() -> list[dict]:
    """Two playlists of 30+ tracks and one of 29; track 'dup' has two URIs for one name and artist."""
    songs = [track(f"u:{i}", "A", f"s{i}") for i in range(40)]
    twin = track("u:twin", "A", "s0")  # "s0 - A" under a second URI
    return [
        playlist(1, songs[:35]),
        playlist(2, [twin, *songs[5:35]]),
        playlist(3, songs[:29]),
    ]


def test_examples_are_the_first_20_tracks_and_positions_21_to_30() -> None:
    corpus = corpus_of(_long_playlists())
    model = NotebookRecommender()
    model.build_vocabulary(corpus)
    inputs, targets = model.notebook_examples(corpus)
    assert inputs.shape == (2, INPUT_TRACKS) and targets.shape == (2, MIN_TRACKS - INPUT_TRACKS)  # 29 tracks: out
    first = corpus.playlist_tracks(0)
    np.testing.assert_array_equal(inputs[0], model.to_word[first[:20]])
    np.testing.assert_array_equal(targets[0], model.to_word[first[20:30]])


def test_vocabulary_is_track_name_dash_artist() -> None:
    corpus = corpus_of(_long_playlists())
    model = NotebookRecommender()
    model.build_vocabulary(corpus)
    ids = corpus.track_ids(["u:0", "u:twin", "u:1"])
    assert model.to_word[ids[0]] == model.to_word[ids[1]] != model.to_word[ids[2]]
    assert model.words[model.to_word[ids[0]]] == "s0 - A"
    assert len(model.words) == corpus.n_tracks - 1
    assert model.word_tracks[model.to_word[ids[0]]] == ids[0]  # recommended as its more frequent URI


def test_as_written_it_takes_two_summed_steps(demo_split) -> None:
    model = make_model("notebook").fit(demo_split[0])
    assert len(model.losses) == 2
    playlists = int((demo_split[0].lengths() >= MIN_TRACKS).sum())
    # a summed loss: about log(vocabulary) per playlist, not a mean
    assert model.losses[0] == pytest.approx(playlists * np.log(len(model.words)), rel=0.2)


def test_needs_playlists_of_30_tracks() -> None:
    with pytest.raises(ValueError, match="at least 30 tracks"):
        make_model("notebook").fit(corpus_of([playlist(1, [f"u:{i}" for i in range(10)])]))


def test_files_setting_trains_on_the_first_files(demo_dir) -> None:
    from songrec.ingest import load_corpus

    corpus, _ = load_corpus([demo_dir])
    model = make_model("notebook", files=1)
    first_file = corpus.playlists["file"].iat[0]
    assert model.training_corpus(corpus).n_playlists == int((corpus.playlists["file"] == first_file).sum())


@pytest.fixture(scope="module")
def replay(demo_split) -> explore.CollapseReport:
    train, test = demo_split
    return explore.replay_notebook(train, test, fixes=ALL_FIXES)


def test_as_written_it_collapses_and_the_fixes_lift_coverage_and_r_precision(replay) -> None:
    summary = replay.summary.set_index("model")
    written, fixed, neural = (summary.loc[k] for k in (explore.AS_WRITTEN, explore.WITH_FIXES, explore.FIXED))
    assert written["overlap"] >= 8, summary  # a country and a Christmas playlist share most of their top 15
    assert fixed["overlap"] <= 2 and neural["overlap"] <= 2
    assert fixed["coverage"] > 1.3 * written["coverage"]
    assert fixed["r_precision"] > 1.5 * written["r_precision"]
    assert neural["r_precision"] > 1.5 * written["r_precision"]
    # as written the model is nearly flat: its top confidence is within a few times 1 / tracks
    assert written["top_confidence"] < 5 * written["uniform"] < fixed["top_confidence"]
    assert set(replay.lists) == set(summary.index)
    assert replay.lists[explore.AS_WRITTEN]["in both"].sum() == written["overlap"]


def test_each_cause_has_a_fix_of_real_settings() -> None:
    names = set(NotebookSettings.names())
    for cause in explore.NOTEBOOK_CAUSES:
        assert set(cause.fix) <= names and cause.why.endswith(".")
        NotebookSettings.build(dict(cause.fix))
    assert explore.notebook_params([]) == {}
    with pytest.raises(ValueError, match="unknown notebook cause"):
        explore.notebook_params(["nope"])
