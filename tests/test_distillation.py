"""ALS as the neural model's teacher: its fold-in scores, the loss on hand-computed cases, and its effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from factories import FAST_NEURAL as FAST

from songrec.distillation import FoldInTeacher, distillation_loss, teacher_logits
from songrec.models import make_model
from songrec.models.network import pad_rows
from songrec.models.neural import NeuralRecommender


def _started(train, **settings) -> tuple[NeuralRecommender, list[FoldInTeacher]]:
    model = NeuralRecommender(**{**FAST, "members": 1, "init": "als", **settings})
    model.build_vocabulary(train)
    model.build_words(train)
    torch.manual_seed(0)
    model.network = model.new_network()
    return model, model.start_from_als(train)


def test_the_exact_teacher_scores_tracks_as_als_does_and_the_shared_one_without_the_seeds_confidence(
    demo_split,
) -> None:
    """The teacher is ALS's own fold-in on the network's (rescaled) start: the same scores as ALS with
    those factors; the shared fold-in leaves the seeds' confidence out of the solve."""
    train, test = demo_split
    model, teachers = _started(train)
    als = make_model(
        "als",
        factors=FAST["embedding_dim"],
        iterations=model.train_settings.init_sweeps,
        seed=0,
        max_items=len(model.vocab_ids),
    ).fit(train)
    seeds = test.playlist_tracks(0)[:8]
    ids, expected = als._score(seeds)
    items = torch.from_numpy(model.to_item[seeds][None])
    candidates = torch.from_numpy(model.to_item[ids])
    start = teachers[0]
    exact = FoldInTeacher(start.factors, start.l2, start.alpha, "exact").scores(items, candidates).numpy()[0]
    np.testing.assert_allclose(exact, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())

    factors = start.factors.double().numpy()
    lhs = factors.T @ factors + start.l2 * np.eye(factors.shape[1])
    user = np.linalg.solve(lhs, (1.0 + start.alpha) * factors[model.to_item[seeds]].sum(axis=0))
    shared = start.scores(items, candidates).numpy()[0]
    np.testing.assert_allclose(shared, factors[model.to_item[ids]] @ user, rtol=1e-3, atol=1e-4 * np.abs(shared).max())
    assert np.corrcoef(shared, exact)[0, 1] > 0.5


def test_distillation_loss_on_a_hand_computed_case() -> None:
    # one playlist, three candidates, the third a seed (-inf); the teacher's largest score is 2, scale 1
    log_probs = torch.log(torch.tensor([[0.75, 0.25, 0.0]]))
    teacher = torch.tensor([[2.0, 1.0, 5.0]])
    target = [math.exp(1.0) / (math.exp(1.0) + math.exp(0.5)), math.exp(0.5) / (math.exp(1.0) + math.exp(0.5))]
    expected = -(target[0] * math.log(0.75) + target[1] * math.log(0.25))
    got = distillation_loss(log_probs, teacher, torch.tensor([True]), scale=1.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_distillation_loss_leaves_out_playlists_without_seeds_and_applies_the_correction() -> None:
    log_probs = torch.log_softmax(torch.tensor([[0.0, 1.0], [3.0, -3.0]]), dim=1)
    teacher = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    correction = torch.tensor([0.0, math.log(3.0)])
    # row 0's teacher logits are (1, 1 - log 3): probabilities 3/4 and 1/4; row 1 has no seeds
    p = torch.softmax(torch.tensor([0.0, 1.0]), dim=0)
    expected = -(0.75 * math.log(p[0]) + 0.25 * math.log(p[1]))
    got = distillation_loss(log_probs, teacher, torch.tensor([True, False]), scale=1.0, correction=correction)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert distillation_loss(log_probs, teacher, torch.tensor([False, False]), scale=1.0).item() == 0.0


def test_a_network_that_agrees_with_its_teacher_gets_no_gradient() -> None:
    teacher = torch.tensor([[0.5, -0.2, 0.1, 0.4]])
    logits = (3.0 * teacher / 0.5).clone().requires_grad_(True)
    loss = distillation_loss(torch.log_softmax(logits, dim=1), teacher, torch.tensor([True]), scale=3.0)
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits), atol=1e-6, rtol=0)


def _divergence_from_teacher(model: NeuralRecommender, teacher: FoldInTeacher, test) -> float:
    """KL(teacher || network) over every track for the first tracks of held-out playlists: the distillation
    loss less its floor, the teacher's own entropy."""
    rows = [model.to_item[test.playlist_tracks(row)[:10]] for row in range(40)]
    seeds = torch.from_numpy(pad_rows([row[row > 0] for row in rows]))
    with torch.no_grad():
        logits = model.network(seeds)
    scores, has_seeds = teacher.scores(seeds), (seeds != 0).any(dim=1)
    scale = model.train_settings.distill_scale
    own = torch.log_softmax(teacher_logits(scores, torch.isinf(logits), scale), dim=1)
    entropy = distillation_loss(own, scores, has_seeds, scale).item()
    return distillation_loss(torch.log_softmax(logits, dim=1), scores, has_seeds, scale).item() - entropy


def test_a_taught_network_answers_more_like_its_teacher(demo_split) -> None:
    train, test = demo_split
    settings = {**FAST, "members": 1, "init": "als", "negatives": 64, "epochs": 4, "val_share": 0.0}
    _, teachers = _started(train, **{k: v for k, v in settings.items() if k != "members"})
    alone = NeuralRecommender(**settings, distill=0.0).fit(train)
    taught = NeuralRecommender(**settings, distill=1.0).fit(train)
    assert _divergence_from_teacher(taught, teachers[0], test) < 0.9 * _divergence_from_teacher(
        alone, teachers[0], test
    )
