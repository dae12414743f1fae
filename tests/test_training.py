"""The training loop (songrec.training): loss, batches, schedule, callbacks, stopping and interrupts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from factories import FAST_NEURAL as FAST

from songrec.config import TrainSettings
from songrec.corpus import Corpus
from songrec.models.base import FitProgress
from songrec.models.network import PlaylistModel
from songrec.models.neural import NeuralRecommender
from songrec.training import (
    NegativeSampler,
    TrainingPlaylists,
    TrainProgress,
    learning_rate_factor,
    sample_batch,
    sampled_softmax_loss,
    softmax_loss,
    train,
)


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


def test_learning_rate_warms_up_then_decays() -> None:
    factors = [learning_rate_factor(step, 100) for step in range(100)]
    assert factors[0] < factors[4] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in zip(factors[5:], factors[6:], strict=False))


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


def test_history_and_best_epoch(trained_neural) -> None:
    assert [h["epoch"] for h in trained_neural.history] == list(range(1, FAST["epochs"] + 1))
    assert trained_neural.best_val_metric == max(h["val_metric"] for h in trained_neural.history)
    assert f"validation R-precision {trained_neural.best_val_metric:.4f}" in trained_neural.kept_epoch()
    assert trained_neural.history[-1]["loss"] < trained_neural.history[0]["loss"]


def test_without_a_validation_share_every_playlist_is_learned_and_the_last_epoch_kept(demo_split) -> None:
    live: list[float] = []  # what the app's live curves draw while training runs
    model = NeuralRecommender(**{**FAST, "epochs": 3, "val_share": 0.0}).fit(
        demo_split[0], callback=lambda p: live.append(p.val_metric) if getattr(p, "epoch_end", False) else None
    )
    assert len(live) == 3 and all(math.isnan(v) for v in live)
    assert [h["epoch"] for h in model.history] == [1, 2, 3]
    assert all(math.isnan(h["val_metric"]) for h in model.history), "no validation: no made-up R-precision"
    assert math.isnan(model.best_val_metric)
    assert model.kept_epoch() == f"epoch {model.best_epoch} kept (no validation share: every playlist was learned from)"
    assert model.history[model.best_epoch - 1]["loss"] == min(h["loss"] for h in model.history)


def test_callback_sees_every_step_and_can_stop(demo_split) -> None:
    events: list[TrainProgress] = []

    def stop_after_two_epochs(progress: TrainProgress | FitProgress) -> bool:
        events.append(progress)
        return not (isinstance(progress, TrainProgress) and progress.epoch_end and progress.epoch == 2)

    model = NeuralRecommender(**{**FAST, "epochs": 10}).fit(demo_split[0], callback=stop_after_two_epochs)
    assert model.epochs_trained == 2
    assert isinstance(events[-1], FitProgress) and events[-1].fraction == 1.0  # fit's own last report
    events = [e for e in events if isinstance(e, TrainProgress)]
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


def _loss_turns_nan_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the step-th training step on, the loss (and so every gradient) is NaN."""
    import songrec.training as training

    calls = {"n": 0}

    def poison(real):
        def poisoned(*args, **kwargs):
            calls["n"] += 1
            loss = real(*args, **kwargs)
            return loss * float("nan") if calls["n"] >= step else loss

        return poisoned

    for name in ("softmax_loss", "sampled_softmax_loss"):  # the full or the sampled softmax, whichever trains
        monkeypatch.setattr(training, name, poison(getattr(training, name)))


def test_a_loss_that_is_nan_from_the_start_keeps_nothing(demo_split, monkeypatch, tmp_path) -> None:
    from songrec.models.base import NotFittedError
    from songrec.training import TrainingDiverged

    _loss_turns_nan_at(1, monkeypatch)
    model = NeuralRecommender(**{**FAST, "epochs": 3, "members": 1})
    with pytest.raises(
        TrainingDiverged,
        match=r"diverged at epoch 1, step 1: the loss became nan at learning rate "
        r"0\.01; no epoch ended with finite weights",
    ):
        model.fit(demo_split[0])
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "nan.safetensors")


def test_a_loss_that_turns_nan_later_keeps_the_best_finite_epoch(demo_split, monkeypatch) -> None:
    steps_per_epoch = -(-len(demo_split[0].playlists) * 95 // 100 // FAST["batch_size"])
    _loss_turns_nan_at(2 * steps_per_epoch + 3, monkeypatch)
    model = NeuralRecommender(**{**FAST, "epochs": 6, "members": 1}).fit(demo_split[0])
    assert model.epochs_trained == 2 and model.best_epoch in (1, 2)
    assert "diverged at epoch 3" in model.diverged and f"epoch {model.best_epoch}" in model.diverged
    assert all(torch.isfinite(p).all() for p in model.network.parameters())
    ids, scores = model.recommend(demo_split[1].playlist_tracks(0)[:5], None, 20)
    assert len(ids) == 20 and np.isfinite(scores).all()


def test_train_command_reports_divergence_and_writes_nothing(demo_dir, monkeypatch, capsys, tmp_path) -> None:
    from songrec.cli import main

    _loss_turns_nan_at(1, monkeypatch)
    out = tmp_path / "diverged.safetensors"
    code = main(
        [
            "train",
            "--data",
            str(demo_dir),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--members",
            "1",
            "--embedding-dim",
            "16",
            "--hidden-dim",
            "16",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "songrec: training diverged at epoch 1, step 1" in err and "lower the learning rate" in err
    assert not out.exists()


def test_non_finite_scores_are_never_recommended(trained_neural, demo_split) -> None:
    seeds = demo_split[1].playlist_tracks(0)[:5]
    ids, _ = trained_neural.recommend(seeds, None, 30)
    poisoned = trained_neural.to_item[ids[:2]]  # the two best tracks get NaN and +inf biases
    first = trained_neural.network.members[0]
    saved = first.bias.detach().clone()
    try:
        with torch.no_grad():
            first.bias[poisoned[0]] = float("nan")
            first.bias[poisoned[1]] = float("inf")
        again, scores = trained_neural.recommend(seeds, None, 30)
    finally:
        with torch.no_grad():
            first.bias.copy_(saved)
    assert not np.isin(ids[:2], again).any()
    assert len(again) == 30 and not np.isinf(scores).any()


def _tiny_playlists(n_items: int = 30, n: int = 40, seed: int = 0) -> TrainingPlaylists:
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(3, 10), replace=False) for _ in range(n)]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=ptr[1:])
    return TrainingPlaylists(
        ptr, np.concatenate(rows).astype(np.int64), np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    )


def test_a_sampled_softmax_over_every_track_is_the_full_softmax() -> None:
    torch.manual_seed(0)
    network = PlaylistModel(n_items=30, dim=8, hidden=16).eval()
    playlists = _tiny_playlists()
    # so many draws that every track is a candidate with probability 1: the correction log(1) is 0
    sampler = NegativeSampler(playlists, 30, count=100_000, power=0.0)
    seeds = np.array([[3, 4, 0], [5, 6, 7]])
    targets = np.array([[9, 10, 1], [11, 0, 0]])
    words = np.zeros((2, 1), dtype=np.int64)
    sampled = sampled_softmax_loss(
        network, seeds, targets, words, sampler, np.random.default_rng(0), torch.device("cpu")
    )
    full = softmax_loss(network(torch.from_numpy(seeds)), torch.from_numpy(targets))
    torch.testing.assert_close(sampled, full)


def test_frequent_tracks_get_the_larger_log_frequency_correction() -> None:
    playlists = _tiny_playlists()
    sampler = NegativeSampler(playlists, 30, count=8, power=0.75)
    candidates, log_inclusion, positions = sampler.draw(np.array([[1, 2, 0]]), np.random.default_rng(0))
    assert list(candidates) == sorted(set(candidates)) and 0 not in candidates
    assert {1, 2} <= set(candidates.tolist()) and candidates[positions[0, :2]].tolist() == [1, 2]
    frequency = np.bincount(playlists.items_flat, minlength=31)[candidates]
    order = np.argsort(frequency, kind="stable")
    assert (np.diff(log_inclusion[order]) >= -1e-6).all(), "more frequent, more likely drawn"
    assert (log_inclusion <= 0).all()


def test_a_sampled_step_moves_only_the_rows_it_looked_up() -> None:
    torch.manual_seed(0)
    network = PlaylistModel(n_items=500, dim=8, hidden=16)
    playlists = _tiny_playlists(n_items=500, n=8)
    before = network.embedding.weight.detach().clone()
    settings = TrainSettings(epochs=1, batch_size=8, negatives=20, patience=0, val_share=0.0)
    train(network, playlists, settings, max_seeds=5, device=torch.device("cpu"))
    changed = (network.embedding.weight.detach() != before).any(dim=1)
    assert 0 < int(changed.sum()) < 200, "one step of 8 playlists and 20 negatives touches a few rows, not 500"
    assert not changed[0], "padding never moves"


def test_training_stops_when_validation_stops_improving() -> None:
    torch.manual_seed(0)
    network = PlaylistModel(n_items=30, dim=8, hidden=16)
    scores = iter([0.5, 0.4, 0.45, 0.9, 0.9])
    settings = TrainSettings(epochs=5, batch_size=8, negatives=10, patience=2, val_share=0.0)
    result = train(
        network, _tiny_playlists(), settings, max_seeds=5, device=torch.device("cpu"), validate=lambda: next(scores)
    )
    assert result.early_stopped and result.epochs_trained == 3 and result.best_epoch == 1
    assert [h["val_metric"] for h in result.history] == [0.5, 0.4, 0.45]
