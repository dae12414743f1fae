"""The baselines through the shared model checks, item-kNN against popularity, and safe loading."""

from __future__ import annotations

import os
import pickle
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest
from recommender_checks import RecommenderBaseTestMixin
from safetensors.numpy import save_file

from songrec.checkpoint import CheckpointError, checkpoint_kind, load_checkpoint, save_checkpoint
from songrec.corpus import Corpus
from songrec.metrics import evaluate_model
from songrec.models import load_model, make_model, model_class, model_names
from songrec.models.base import Recommender, top_n
from songrec.models.itemknn import ItemKNNRecommender
from songrec.models.popularity import PopularityRecommender
from songrec.models.title import TitleModel, normalize_name


class TestPopularity(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("popularity")

    def test_country_and_christmas_get_different_lists(self, model: Recommender, demo_split) -> None:
        """Popularity ignores the seeds: with the same tracks excluded, both get the very same list."""
        country, christmas = self.country_and_christmas_top15(model, demo_split[1])
        assert country == christmas

    def test_top15_mostly_of_the_seed_genre(self, model: Recommender, fit_corpus: Corpus) -> None:
        """Instead of a genre: the list is the most frequent training tracks, minus the seeds."""
        seeds = fit_corpus.playlist_tracks(3)[:10]
        ids, scores = model.recommend(seeds, None, 15)
        counts = fit_corpus.track_counts
        order = np.argsort(-counts, kind="stable")
        assert ids.tolist() == [t for t in order.tolist() if t not in seeds][:15]
        np.testing.assert_array_equal(scores, counts[ids].astype(np.float32))


class TestItemKNN(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("itemknn", neighbours=100)

    def test_config_survives_saving(self, model: Recommender, tmp_path: Path) -> None:
        model.save(tmp_path / "knn.safetensors")
        loaded = load_model(tmp_path / "knn.safetensors")
        assert loaded.config() == {"neighbours": 100, "alpha": model.alpha}
        assert (loaded.similarity != model.similarity).nnz == 0

    def test_neighbours_co_occur(self, model: ItemKNNRecommender, fit_corpus: Corpus) -> None:
        matrix = fit_corpus.matrix()
        cooc = (matrix.T @ matrix).tocsr()
        sim = model.similarity
        assert sim.shape == (fit_corpus.n_tracks, fit_corpus.n_tracks)
        assert np.diff(sim.indptr).max() <= 100
        for track in np.flatnonzero(fit_corpus.track_counts > 2)[:20]:
            neighbours = sim.indices[sim.indptr[track] : sim.indptr[track + 1]]
            assert track not in neighbours
            assert (cooc[track, neighbours].toarray() > 0).all()


def test_itemknn_beats_popularity_on_r_precision(demo_split: tuple[Corpus, Corpus], demo_cases: list) -> None:
    train, test = demo_split
    scores = {
        name: evaluate_model(make_model(name).fit(train), demo_cases, test.track_artist).overall
        for name in ("popularity", "itemknn")
    }
    assert scores["itemknn"].cases == scores["popularity"].cases == len(demo_cases)
    assert scores["itemknn"].r_precision > scores["popularity"].r_precision + 0.1, scores
    assert scores["itemknn"].ndcg > scores["popularity"].ndcg, scores


# --- the registry and shared helpers ------------------------------------------------------------------


def test_model_registry() -> None:
    assert {"popularity", "itemknn"} <= set(model_names())
    assert model_class("popularity") is PopularityRecommender
    assert model_class("itemknn") is ItemKNNRecommender
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_class("nope")


def test_top_n_skips_excluded_and_non_finite() -> None:
    candidates = np.array([5, 6, 7, 8, 9])
    values = np.array([0.1, np.nan, 0.9, 0.5, np.inf * -1])
    ids, scores = top_n(candidates, values, 2, exclude=np.array([7]))
    assert ids.tolist() == [8, 5]
    np.testing.assert_allclose(scores, [0.5, 0.1])
    assert top_n(candidates, values, 10, np.array([], dtype=np.int64))[0].tolist() == [7, 8, 5]
    assert len(top_n(np.array([], dtype=np.int64), np.array([]), 5, np.array([1]))[0]) == 0


def test_title_model_matches_names_and_words(demo_split: tuple[Corpus, Corpus]) -> None:
    train = demo_split[0]
    title = TitleModel().fit(train)
    assert normalize_name("  Country 🤠!! ") == "country"
    assert title.score("zzqx never seen") is None
    ids, values = title.score("COUNTRY 🤠")
    assert len(ids) > 0 and (values > 0).all()
    # the exact-name tracks score higher than tracks only sharing a word
    country_rows = np.flatnonzero(train.playlists["name"].map(normalize_name) == "country")
    in_country = np.unique(np.concatenate([train.playlist_tracks(r) for r in country_rows]))
    assert np.isin(ids[np.argsort(-values)[:20]], in_country).all()


# --- checkpoints: safetensors only, never a pickle -------------------------------------------------------


class RunsCode:
    """A pickle payload: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_loading_a_pickle_never_runs_it(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsCode(f"touch {shlex.quote(str(marker))}"), protocol=protocol)
    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a songrec checkpoint"):
        load_model(path)
    for load in (ItemKNNRecommender.load, load_checkpoint, checkpoint_kind):
        with pytest.raises(CheckpointError):
            load(path)
    assert not marker.exists()
    # the payload is live: unpickling it really would have created the file
    pickle.loads(payload)
    assert marker.exists()


def test_loading_a_torch_style_zip_with_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(RunsCode(f"touch {shlex.quote(str(marker))}")))
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_other_files_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    text = tmp_path / "notes.safetensors"
    text.write_text("just some text that is not a checkpoint\n" * 3)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    odd = tmp_path / "odd.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(odd), metadata={"format": "songrec-checkpoint"})
    for path, message in (
        (empty, "file too short"),
        (text, "not a songrec checkpoint"),
        (foreign, "format is None"),
        (odd, "names no model kind"),
    ):
        with pytest.raises(CheckpointError, match=message):
            load_model(path)


def test_a_header_with_odd_metadata_is_refused(tmp_path: Path) -> None:
    header = b'{"__metadata__": "not a mapping"}'
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match="not a songrec checkpoint"):
        load_model(path)


def test_a_model_of_another_kind_is_refused(tmp_path: Path, demo_split: tuple[Corpus, Corpus]) -> None:
    path = tmp_path / "pop.safetensors"
    make_model("popularity").fit(demo_split[0]).save(path)
    assert checkpoint_kind(path) == "popularity"
    with pytest.raises(CheckpointError, match="holds a 'popularity' model, not 'itemknn'"):
        ItemKNNRecommender.load(path)


def test_a_damaged_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    save_checkpoint(path, "popularity", {}, {"popularity": np.ones(1000, np.float32)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_checkpoint(path)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "x.safetensors"
    arrays = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.linspace(0, 1, 4, dtype=np.float32)}
    strings = {"names": ["country 🤠", "", "Ünïcödé"], "none": []}
    save_checkpoint(path, "itemknn", {"neighbours": 3, "alpha": 0.5}, arrays, strings)
    config, loaded, loaded_strings = load_checkpoint(path, "itemknn")
    assert config == {"neighbours": 3, "alpha": 0.5}
    assert loaded.keys() == arrays.keys()
    for key in arrays:
        np.testing.assert_array_equal(loaded[key], arrays[key])
        assert loaded[key].dtype == arrays[key].dtype
    assert loaded_strings == strings
    assert not path.read_bytes().startswith(b"\x80"), "not a pickle"
