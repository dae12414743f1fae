"""The neural playlist model: the shared model checks, genre behaviour, determinism, training control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recommender_checks import RecommenderBaseTestMixin, genre_rows

from songrec.corpus import Corpus
from songrec.models import make_model
from songrec.models.base import Recommender
from songrec.models.network import PlaylistEnsemble, PlaylistModel, pick_device
from songrec.models.neural import NeuralRecommender
from songrec.training import (
    TrainProgress,
    learning_rate_factor,
    sample_batch,
    softmax_loss,
    use_sparse_lookups,
)

FAST = {
    "epochs": 12,
    "embedding_dim": 48,
    "hidden_dim": 96,
    "learning_rate": 0.01,
    "batch_size": 32,
    "members": 2,
    "seed": 0,
}


class TestNeural(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("neural", **FAST)


class TestEASE(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("ease", max_items=2000, l2=100.0)


class TestALS(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("als", factors=32, iterations=8)


@pytest.fixture(scope="module")
def trained(demo_split: tuple[Corpus, Corpus]) -> NeuralRecommender:
    return NeuralRecommender(**FAST).fit(demo_split[0])


def _genre_top15(model: Recommender, test: Corpus, genre: str) -> tuple[np.ndarray, np.ndarray]:
    row = genre_rows(test, genre)[0]
    seeds = test.playlist_tracks(row)[:10]
    ids, _ = model.recommend(seeds, None, 15)
    return seeds, ids


def test_country_and_christmas_playlists_get_their_genre(trained, demo_split, demo_track_genres) -> None:
    test = demo_split[1]
    _, country = _genre_top15(trained, test, "country")
    _, christmas = _genre_top15(trained, test, "christmas")
    assert np.mean(demo_track_genres[country] == "country") >= 0.8
    assert np.mean(demo_track_genres[christmas] == "christmas") >= 0.8
    assert len(set(country.tolist()) & set(christmas.tolist())) <= 2


def test_same_seed_same_model(trained, demo_split) -> None:
    again = NeuralRecommender(**FAST).fit(demo_split[0])
    for genre in ("country", "christmas", "hip-hop"):
        np.testing.assert_array_equal(
            _genre_top15(trained, demo_split[1], genre)[1], _genre_top15(again, demo_split[1], genre)[1]
        )


def test_beats_popularity_on_held_out_playlists(trained, demo_split, demo_cases) -> None:
    from songrec.metrics import evaluate_model

    popularity = make_model("popularity").fit(demo_split[0])
    track_artist = demo_split[0].track_artist
    neural = evaluate_model(trained, demo_cases, track_artist).overall
    baseline = evaluate_model(popularity, demo_cases, track_artist).overall
    assert neural.r_precision > 1.5 * baseline.r_precision
    assert neural.ndcg > baseline.ndcg
    assert neural.clicks < baseline.clicks


def test_history_and_best_epoch(trained) -> None:
    assert [h["epoch"] for h in trained.history] == list(range(1, FAST["epochs"] + 1))
    assert trained.best_val_metric == max(h["val_metric"] for h in trained.history)
    assert trained.history[-1]["loss"] < trained.history[0]["loss"]


def test_callback_sees_every_step_and_can_stop(demo_split) -> None:
    events: list[TrainProgress] = []

    def stop_after_two_epochs(progress: TrainProgress) -> bool:
        events.append(progress)
        return not (progress.epoch_end and progress.epoch == 2)

    model = NeuralRecommender(**{**FAST, "epochs": 10}).fit(demo_split[0], callback=stop_after_two_epochs)
    assert model.epochs_trained == 2
    assert sum(e.epoch_end for e in events) == 2
    assert all(e.device == "cpu" and e.loss > 0 and e.seconds >= 0 for e in events)
    assert events[-1].step == events[-1].steps
    ids, _ = model.recommend(demo_split[1].playlist_tracks(0)[:5], None, 20)
    assert len(ids) == 20


def test_interrupted_training_keeps_a_usable_model(demo_split) -> None:
    model = NeuralRecommender(**{**FAST, "epochs": 10})

    def interrupt(progress: TrainProgress) -> None:
        if progress.epoch == 3 and progress.step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(demo_split[0], callback=interrupt)
    assert model.best_epoch == 2
    assert not model.network.training
    assert len(model.recommend(demo_split[1].playlist_tracks(0)[:5], None, 10)[0]) == 10


def test_untied_head_trains(demo_split) -> None:
    model = NeuralRecommender(**{**FAST, "epochs": 2, "tied": False, "members": 1}).fit(demo_split[0])
    assert model.network.head is not None
    assert len(model.recommend(demo_split[1].playlist_tracks(0)[:5], None, 10)[0]) == 10


def test_an_ensemble_scores_by_its_members_mean_log_probability(trained, demo_split) -> None:
    assert isinstance(trained.network, PlaylistEnsemble) and len(trained.network.members) == 2
    first, second = trained.network.members
    assert not torch.equal(first.embedding.weight, second.embedding.weight), "members start from different weights"
    seeds = demo_split[1].playlist_tracks(0)[:5]
    ids, scores = trained.recommend(seeds, None, 10)
    items = torch.from_numpy(trained.to_item[seeds][None, :])
    with torch.no_grad():
        mean = (torch.log_softmax(first(items), dim=1) + torch.log_softmax(second(items), dim=1)) / 2
    expected = torch.topk(mean[0, 1:], 10).indices.numpy()
    np.testing.assert_array_equal(ids, trained.vocab_ids[expected])
    np.testing.assert_allclose(scores, torch.topk(mean[0, 1:], 10).values.numpy(), rtol=1e-5)


def test_a_single_network_saves_and_loads_as_one(demo_split, tmp_path) -> None:
    model = NeuralRecommender(**{**FAST, "epochs": 2, "members": 1}).fit(demo_split[0])
    assert isinstance(model.network, PlaylistModel)
    model.save(tmp_path / "one.safetensors")
    loaded = NeuralRecommender.load(tmp_path / "one.safetensors")
    assert isinstance(loaded.network, PlaylistModel) and loaded.network_settings.members == 1
    seeds = demo_split[1].playlist_tracks(0)[:5]
    np.testing.assert_array_equal(loaded.recommend(seeds, None, 10)[0], model.recommend(seeds, None, 10)[0])


def test_padding_does_not_change_a_playlist_and_one_track_has_zero_std() -> None:
    torch.manual_seed(0)
    network = PlaylistModel(n_items=20, dim=8, hidden=16).eval()
    short = torch.tensor([[3, 7]])
    padded = torch.tensor([[3, 7, 0, 0, 0]])
    torch.testing.assert_close(network.encode(short), network.encode(padded))
    single = network.embedding(torch.tensor([[5]])).squeeze(1)
    expected = network.mlp_mean(single) + single
    expected = network.mlp_var(expected) + expected
    torch.testing.assert_close(network.encode(torch.tensor([[5, 0]])), expected, atol=1e-3, rtol=0)


def test_seeds_and_padding_are_never_scored() -> None:
    network = PlaylistModel(n_items=10, dim=4, hidden=8).eval()
    logits = network(torch.tensor([[2, 4, 0], [1, 2, 3]]))
    assert torch.isinf(logits[0, [0, 2, 4]]).all()
    assert torch.isfinite(logits[0, [1, 3, 5]]).all()
    assert torch.isinf(logits[1, [0, 1, 2, 3]]).all(), "padding is never scored, even in a row without padding"


def test_loss_averages_over_real_targets() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
    targets = torch.tensor([[1, 2], [1, 0]])
    # playlist 1: -(log .25 + log .25)/2 = log 4; playlist 2: -log .25 = log 4 (padding ignored)
    assert softmax_loss(logits, targets).item() == pytest.approx(np.log(4.0))


def test_an_ensemble_loss_is_the_sum_of_its_members_losses() -> None:
    member = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    targets = torch.tensor([[1]])
    stacked = torch.stack([member, member])
    torch.testing.assert_close(softmax_loss(stacked, targets), 2 * softmax_loss(member, targets))
    torch.testing.assert_close(softmax_loss(member, targets), torch.log(torch.tensor(4.0)))


def test_each_ensemble_member_trains_on_its_own_batch() -> None:
    torch.manual_seed(0)
    members = [PlaylistModel(n_items=12, dim=4, hidden=8).eval() for _ in range(2)]
    ensemble = PlaylistEnsemble(members)
    first, second = np.array([[1, 2, 3]]), np.array([[7]])
    seeds, targets = np.array([[[1, 2, 3]], [[7, 0, 0]]]), np.array([[[4, 0]], [[8, 9]]])
    logits = ensemble(torch.from_numpy(seeds))
    torch.testing.assert_close(logits[0], members[0](torch.from_numpy(first)))
    torch.testing.assert_close(logits[1], members[1](torch.tensor([[7, 0, 0]])), msg="padded to a common width")
    own = softmax_loss(members[0](torch.from_numpy(first)), torch.tensor([[4]])) + softmax_loss(
        members[1](torch.from_numpy(second)), torch.tensor([[8, 9]])
    )
    torch.testing.assert_close(softmax_loss(logits, torch.from_numpy(targets)), own)


def test_per_member_rows_give_per_member_batches_padded_to_one_width(demo_corpus: Corpus) -> None:
    model = NeuralRecommender(**FAST)
    model.build_vocabulary(demo_corpus)
    model.build_words(demo_corpus)
    playlists = model.training_playlists(demo_corpus)
    rows = np.array([[0, 1, 2], [3, 4, 5]])
    seeds, targets, words = sample_batch(
        playlists, rows, np.random.default_rng(7), model.train_settings, model.network_settings.max_seeds
    )
    assert seeds.shape[:2] == targets.shape[:2] == words.shape[:2] == (2, 3)
    rng = np.random.default_rng(7)  # the same draws, one member at a time
    for member, member_rows in enumerate(rows):
        alone = sample_batch(playlists, member_rows, rng, model.train_settings, model.network_settings.max_seeds)
        for stacked, own in zip((seeds, targets, words), alone, strict=True):
            np.testing.assert_array_equal(stacked[member, :, : own.shape[1]], own)
            assert not stacked[member, :, own.shape[1] :].any(), "padding to the common width is PAD"


def test_sparse_seed_lookups_give_the_same_dense_gradient() -> None:
    gradients = []
    for sparse in (False, True):
        torch.manual_seed(0)
        network = PlaylistModel(n_items=30, dim=6, hidden=8)
        if sparse:
            use_sparse_lookups(network, torch.device("cpu"))
        assert network.embedding.sparse is sparse
        softmax_loss(network(torch.tensor([[3, 4, 0], [5, 6, 7]])), torch.tensor([[9, 10], [11, 0]])).backward()
        assert network.embedding.weight.grad.layout == torch.strided
        gradients.append(network.embedding.weight.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


def test_learning_rate_warms_up_then_decays() -> None:
    factors = [learning_rate_factor(step, 100) for step in range(100)]
    assert factors[0] < factors[4] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in zip(factors[5:], factors[6:], strict=False))


def test_device_choice() -> None:
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")


def test_track_embeddings_for_the_projection(trained) -> None:
    ids, vectors = trained.track_embeddings()
    assert vectors.shape == (len(ids), FAST["embedding_dim"])
    assert len(np.unique(ids)) == len(ids)


def test_training_playlists_keep_each_vocabulary_track_once_in_order(demo_corpus: Corpus) -> None:
    model = NeuralRecommender(min_track_count=60)
    model.build_vocabulary(demo_corpus)
    model.build_words(demo_corpus)
    playlists = model.training_playlists(demo_corpus)
    expected = []
    for row in range(demo_corpus.n_playlists):  # the plain loop the vectorised build replaces
        items = [int(i) for i in model.to_item[demo_corpus.playlist_tracks(row)] if i > 0]
        items = list(dict.fromkeys(items))
        if len(items) >= 2:
            expected.append(items)
    assert 0 < len(playlists) < demo_corpus.n_playlists  # a high min count drops some playlists
    assert [playlists.items(r).tolist() for r in range(len(playlists))] == expected
    odd = playlists.take(np.arange(1, len(playlists), 2))
    assert [odd.items(r).tolist() for r in range(len(odd))] == expected[1::2]
