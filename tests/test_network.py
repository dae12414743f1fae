"""The torch network alone (songrec.models.network): pooling, masking, ensembles, sparse lookups, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from songrec.models.network import PlaylistEnsemble, PlaylistModel, pick_device
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
