"""The torch network alone (songrec.models.network): pooling, masking, ensembles, sparse lookups, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from songrec.models.network import (
    PlaylistEnsemble,
    PlaylistModel,
    ServedScores,
    best_unordered,
    pick_device,
    principal_directions,
)
from songrec.training import (
    softmax_loss,
    use_sparse_lookups,
)


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


def test_device_choice() -> None:
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")


def _ensemble(n_items: int, members: int, dim: int = 16) -> PlaylistModel | PlaylistEnsemble:
    torch.manual_seed(1)
    models = [PlaylistModel(n_items=n_items, dim=dim, hidden=32).eval() for _ in range(members)]
    for model in models:  # trained-looking logits: a spread of biases and longer vectors
        with torch.no_grad():
            model.embedding.weight.mul_(3.0)
            model.bias.normal_(std=1.0)
    return models[0] if members == 1 else PlaylistEnsemble(models)


def test_principal_directions_keep_what_the_rows_span_and_nothing_when_they_span_everything() -> None:
    torch.manual_seed(0)
    low = torch.randn(2000, 32) @ torch.randn(32, 96)  # rank 32 in 96 columns
    directions = principal_directions(low, 0.9)
    assert directions.shape == (96, 32)
    torch.testing.assert_close(low @ directions @ directions.T, low, rtol=1e-3, atol=1e-3)
    assert principal_directions(torch.randn(2000, 96), 0.9) is None, "full rank: projecting would save nothing"


def test_members_from_related_starts_are_served_from_fewer_columns_and_rank_like_exact_scores() -> None:
    """As the ALS starts make them: members whose output rows are the same tracks' factors seen
    through different rotations, plus a little of their own, need about one member's columns."""
    torch.manual_seed(2)
    dim, items = 32, 6000
    factors = torch.randn(items + 1, dim) * 0.5
    models = []
    for _ in range(3):
        model = PlaylistModel(n_items=items, dim=dim, hidden=64).eval()
        rotation, _ = torch.linalg.qr(torch.randn(dim, dim))
        with torch.no_grad():
            model.embedding.weight.copy_(factors @ rotation + 0.05 * torch.randn(items + 1, dim))
            model.embedding.weight[0].zero_()
            model.bias.normal_(std=1.0)
        models.append(model)
    network = PlaylistEnsemble(models).eval()
    seeds = torch.tensor([[3, 9, 17, 0, 0], [5, 6, 7, 8, 100], [4000, 0, 0, 0, 0], [11, 0, 0, 0, 0]])
    with torch.no_grad():
        exact = network.scores(seeds)
    served = ServedScores(network, "int8")
    assert served.rank == dim, "three related members are served from one member's width"
    n = 200
    _, items_served = served.top(seeds, None, n)
    best = torch.topk(exact, n, dim=1).indices
    for row in range(len(seeds)):
        assert len(set(items_served[row].tolist()) & set(best[row].tolist())) / n >= 0.98


def test_candidate_logits_are_the_full_logits_at_the_candidates() -> None:
    network = _ensemble(40, 1)
    seeds = torch.tensor([[3, 9, 0], [5, 6, 7]])
    candidates = torch.tensor([2, 3, 5, 9, 20, 40])
    with torch.no_grad():
        full = network(seeds)
        some = network(seeds, candidates=candidates)
    torch.testing.assert_close(some, full[:, candidates])
    assert torch.isinf(some[0, [1, 3]]).all() and torch.isinf(some[1, 2]), "a seed among the candidates is masked"


@pytest.mark.parametrize("members", [1, 2])
def test_served_float32_scores_are_the_network_scores(members: int) -> None:
    network = _ensemble(300, members)
    seeds = torch.tensor([[3, 9, 0], [5, 6, 7]])
    with torch.no_grad():
        expected = network.scores(seeds)
    served = ServedScores(network, "float32")
    torch.testing.assert_close(served.scores(seeds), expected, rtol=1e-5, atol=1e-5)
    values, items = served.top(seeds, None, 20)
    torch.testing.assert_close(values, torch.topk(expected, 20, dim=1).values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("members", [1, 3])
def test_served_low_precision_tables_rank_like_exact_scores(precision: str, members: int) -> None:
    network = _ensemble(5000, members, dim=32)
    seeds = torch.tensor([[3, 9, 17, 0, 0], [5, 6, 7, 8, 100], [4000, 0, 0, 0, 0]])
    with torch.no_grad():
        exact = network.scores(seeds)
    served = ServedScores(network, precision)
    n = 100
    values, items = served.top(seeds, None, n)
    best = torch.topk(exact, n, dim=1)
    for row in range(len(seeds)):
        overlap = len(set(items[row].tolist()) & set(best.indices[row].tolist())) / n
        assert overlap >= 0.97, (precision, members, row, overlap)
        assert not set(items[row].tolist()) & set(seeds[row].tolist()), "seeds and padding are never served"
    # the returned values are the exact scores of the returned tracks (an approximate normaliser aside)
    rescored = exact.gather(1, items)
    shift = (values - rescored).mean(dim=1, keepdim=True)
    torch.testing.assert_close(values - shift, rescored, rtol=0, atol=1e-4)
    assert (values[:, :-1] >= values[:, 1:]).all()
    approximate = torch.topk(served.scores(seeds), n, dim=1).indices  # the approximate pass alone, no rescoring
    for row in range(len(seeds)):
        assert len(set(approximate[row].tolist()) & set(best.indices[row].tolist())) / n >= 0.9


@pytest.mark.parametrize("dim", [4, 12, 100])
def test_int8_table_of_any_width_serves_a_batch_like_exact_scores(dim: int) -> None:
    """torch's int8 x bfloat16 kernel crashed the process on a batch of 4 when the width was not a multiple of 8."""
    network = _ensemble(3000, 1, dim=dim)
    seeds = torch.tensor([[3, 9, 0], [5, 6, 7], [11, 0, 0], [2999, 1, 0]])
    with torch.no_grad():
        exact = network.scores(seeds)
    served = ServedScores(network, "int8")
    assert served.rank % 8 == 0 and served.rank >= dim
    torch.testing.assert_close(
        served.scores(seeds).softmax(dim=1), exact.softmax(dim=1), rtol=0, atol=0.05 * exact.softmax(dim=1).max().item()
    )
    _, items = served.top(seeds, None, 50)
    best = torch.topk(exact, 50, dim=1).indices
    for row in range(len(seeds)):
        assert len(set(items[row].tolist()) & set(best[row].tolist())) >= 48


def test_best_unordered_finds_the_same_scores_as_a_full_top_k() -> None:
    torch.manual_seed(3)
    scores = torch.randn(4, 20_000)
    scores[1, :15_000] = 0.5  # a block of ties across the cut
    scores[2, ::3] = float("-inf")  # seeds and padding
    scores[3] = torch.linspace(0, 1, 20_000)  # sorted: the sample's estimate at its edge
    for count in (1, 300, 2000, 19_999):
        chosen = best_unordered(scores, count)
        assert chosen.shape == (4, count)
        for row in range(4):
            assert len(set(chosen[row].tolist())) == count
            expected = torch.topk(scores[row], count).values
            torch.testing.assert_close(scores[row, chosen[row]].sort(descending=True).values, expected)
