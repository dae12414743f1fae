"""The neural recommender: the shared model checks, genre behaviour, determinism, ensembles, checkpoints."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from factories import FAST_NEURAL as FAST
from recommender_checks import RecommenderBaseTestMixin, genre_rows

from songrec.corpus import Corpus
from songrec.models import load_model, make_model
from songrec.models.base import Recommender
from songrec.models.network import PlaylistEnsemble, PlaylistModel
from songrec.models.neural import NeuralRecommender


class TestNeural(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("neural", **FAST)


def _genre_top15(model: Recommender, test: Corpus, genre: str) -> tuple[np.ndarray, np.ndarray]:
    row = genre_rows(test, genre)[0]
    seeds = test.playlist_tracks(row)[:10]
    ids, _ = model.recommend(seeds, None, 15)
    return seeds, ids


def test_country_and_christmas_playlists_get_their_genre(trained_neural, demo_split, demo_track_genres) -> None:
    test = demo_split[1]
    _, country = _genre_top15(trained_neural, test, "country")
    _, christmas = _genre_top15(trained_neural, test, "christmas")
    assert np.mean(demo_track_genres[country] == "country") >= 0.8
    assert np.mean(demo_track_genres[christmas] == "christmas") >= 0.8
    assert len(set(country.tolist()) & set(christmas.tolist())) <= 2


def test_same_seed_same_model(trained_neural, demo_split) -> None:
    again = NeuralRecommender(**FAST).fit(demo_split[0])
    for genre in ("country", "christmas", "hip-hop"):
        np.testing.assert_array_equal(
            _genre_top15(trained_neural, demo_split[1], genre)[1], _genre_top15(again, demo_split[1], genre)[1]
        )


def test_beats_popularity_on_held_out_playlists(trained_neural, demo_split, demo_cases) -> None:
    from songrec.metrics import evaluate_model

    popularity = make_model("popularity").fit(demo_split[0])
    track_artist = demo_split[0].track_artist
    neural = evaluate_model(trained_neural, demo_cases, track_artist).overall
    baseline = evaluate_model(popularity, demo_cases, track_artist).overall
    assert neural.r_precision > 1.5 * baseline.r_precision
    assert neural.ndcg > baseline.ndcg
    assert neural.clicks < baseline.clicks


def test_untied_head_trains(demo_split) -> None:
    model = NeuralRecommender(**{**FAST, "epochs": 2, "tied": False, "members": 1}).fit(demo_split[0])
    assert model.network.head is not None
    assert len(model.recommend(demo_split[1].playlist_tracks(0)[:5], None, 10)[0]) == 10


def test_an_ensemble_scores_by_its_members_mean_log_probability(trained_neural, demo_split) -> None:
    assert isinstance(trained_neural.network, PlaylistEnsemble) and len(trained_neural.network.members) == 2
    first, second = trained_neural.network.members
    assert not torch.equal(first.embedding.weight, second.embedding.weight), "members start from different weights"
    seeds = demo_split[1].playlist_tracks(0)[:5]
    ids, scores = trained_neural.recommend(seeds, None, 10)
    items = torch.from_numpy(trained_neural.to_item[seeds][None, :])
    with torch.no_grad():
        mean = (torch.log_softmax(first(items), dim=1) + torch.log_softmax(second(items), dim=1)) / 2
    expected = torch.topk(mean[0, 1:], 10).indices.numpy()
    np.testing.assert_array_equal(ids, trained_neural.vocab_ids[expected])
    np.testing.assert_allclose(scores, torch.topk(mean[0, 1:], 10).values.numpy(), rtol=1e-5)


def test_a_single_network_saves_and_loads_as_one(demo_split, tmp_path) -> None:
    model = NeuralRecommender(**{**FAST, "epochs": 2, "members": 1}).fit(demo_split[0])
    assert isinstance(model.network, PlaylistModel)
    model.save(tmp_path / "one.safetensors")
    loaded = NeuralRecommender.load(tmp_path / "one.safetensors")
    assert isinstance(loaded.network, PlaylistModel) and loaded.network_settings.members == 1
    seeds = demo_split[1].playlist_tracks(0)[:5]
    np.testing.assert_array_equal(loaded.recommend(seeds, None, 10)[0], model.recommend(seeds, None, 10)[0])


def test_track_embeddings_for_the_projection(trained_neural) -> None:
    ids, vectors = trained_neural.track_embeddings()
    assert vectors.shape == (len(ids), FAST["embedding_dim"])
    assert len(np.unique(ids)) == len(ids)


def test_embeddings_can_start_from_als_factors(demo_split) -> None:
    train = demo_split[0]
    model = NeuralRecommender(**{**FAST, "members": 1, "init": "als"})
    model.build_vocabulary(train)
    model.build_words(train)
    torch.manual_seed(0)
    model.network = model.new_network()
    model.start_from_als(train)
    sweeps = model.train_settings.init_sweeps
    als = make_model("als", factors=FAST["embedding_dim"], iterations=sweeps, seed=0, max_items=len(model.vocab_ids))
    als.fit(train)
    rows = model.to_item[als.item_ids]
    learned = model.network.embedding.weight.detach().numpy()[rows]
    factors = np.asarray(als.item_factors)
    cosine = (learned * factors).sum(1) / np.linalg.norm(learned, axis=1) / np.linalg.norm(factors, axis=1)
    np.testing.assert_allclose(cosine, 1.0, atol=1e-4)
    assert np.sqrt((learned**2).mean()) == pytest.approx(FAST["embedding_dim"] ** -0.5, rel=1e-3)


def test_the_vocabulary_keeps_tracks_seen_once_unless_told_otherwise(demo_split) -> None:
    """Tracks in one training playlist are a quarter of the MPD sample's entries: the defaults score them."""
    train = demo_split[0]
    counts = train.track_counts
    assert (counts == 1).any()
    model, rarer = NeuralRecommender(), NeuralRecommender(min_track_count=2)
    model.build_vocabulary(train)
    rarer.build_vocabulary(train)
    assert sorted(model.vocab_ids) == sorted(np.flatnonzero(counts >= 1))
    assert sorted(rarer.vocab_ids) == sorted(np.flatnonzero(counts >= 2))


def test_same_seed_same_model_from_als_with_sampled_negatives(demo_split) -> None:
    settings = {**FAST, "epochs": 3, "init": "als", "negatives": 64}
    first = NeuralRecommender(**settings).fit(demo_split[0])
    second = NeuralRecommender(**settings).fit(demo_split[0])
    for a, b in zip(first.network.state_dict().values(), second.network.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_int8_serving_ranks_like_exact_serving(trained_neural, demo_split) -> None:
    exact = trained_neural.served_scores()
    assert exact.exact, "a small vocabulary is served exactly by default"
    quantised = copy.copy(trained_neural)  # the same network, served from an int8 table
    quantised.network_settings = trained_neural.network_settings.replace(serving="int8")
    quantised._served = None
    assert not quantised.served_scores().exact
    n = 50
    for row in range(20):
        seeds = demo_split[1].playlist_tracks(row)[:5]
        ids, _ = quantised.recommend(seeds, None, n)
        truth, _ = trained_neural.recommend(seeds, None, n)
        assert len(set(ids.tolist()) & set(truth.tolist())) >= 0.95 * n


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_checkpoint_naming_a_gpu_loads_on_a_machine_without_it(demo_split, tmp_path, monkeypatch, device) -> None:
    """Checkpoints saved with their training settings name the device they were trained on: on a machine
    without that GPU the model loads on one that is there, and says so."""
    model = make_model("neural", **{**FAST, "epochs": 1, "members": 1}).fit(demo_split[0])
    monkeypatch.setattr(model, "config", lambda: {**model.network_settings.as_dict(), "device": device})
    path = tmp_path / "gpu.safetensors"
    model.save(path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, also where a GPU is
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.warns(UserWarning, match=rf"gpu\.safetensors: saved for device '{device}'.*runs on cpu"):
        loaded = load_model(path)
    assert loaded.device.type == "cpu" and loaded.train_settings.device == "auto"
    seeds = demo_split[1].playlist_tracks(0)[:5]
    ids, scores = loaded.recommend(seeds, None, 20)
    assert len(ids) == 20 and not np.isin(ids, seeds).any()
    np.testing.assert_array_equal(ids, model.recommend(seeds, None, 20)[0])
