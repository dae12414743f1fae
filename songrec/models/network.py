"""The notebook's network in torch alone: pooled track embeddings -> two residual MLPs -> scores.

out1 = mlp_mean(mean) + std + mean; out2 = mlp_var(out1) + out1; scores = out2 . E_track + b_track
(tied head, default) or a Linear head (untied, as the notebook had). Nothing here knows about
corpora, training or checkpoints: `songrec.models.neural` wraps it as a Recommender and
`songrec.training` trains it, and both import this module (never each other).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

PAD = 0


def pad_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of ids as one int64 matrix, padded with PAD (at least one column)."""
    out = np.zeros((len(rows), max([1] + [len(r) for r in rows])), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _masked_mean(vectors: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean over the non-padding positions (0 for a row of padding only)."""
    mask = (ids != PAD).unsqueeze(-1).to(vectors.dtype)
    return (vectors * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class PlaylistModel(nn.Module):
    """Index 0 is padding; items are 1..n_items (the model vocabulary), title words 1..n_words.

    With n_words > 0 the mean of the title's word embeddings is added to the mean of the track
    embeddings before the MLPs, so a title alone, or a title with one seed, says something too;
    with n_words = 0 it is exactly the notebook's architecture.
    """

    def __init__(
        self, n_items: int, dim: int, hidden: int, dropout: float = 0.0, tied: bool = True, n_words: int = 0
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, dim, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()
        self.words = nn.Embedding(n_words + 1, dim, padding_idx=PAD) if n_words else None
        if self.words is not None:
            nn.init.normal_(self.words.weight, std=dim**-0.5)
            with torch.no_grad():
                self.words.weight[PAD].zero_()
        self.dropout = nn.Dropout(dropout)
        self.mlp_mean = MLP(dim, hidden)
        self.mlp_var = MLP(dim, hidden)
        self.head = None if tied else nn.Linear(dim, n_items + 1)
        self.bias = nn.Parameter(torch.zeros(n_items + 1))

    def encode(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """Mean and std of the real (non-padding) seed embeddings through the two residual MLPs."""
        mask = (seeds != PAD).unsqueeze(-1).to(self.embedding.weight.dtype)
        vectors = self.dropout(self.embedding(seeds)) * mask
        count = mask.sum(dim=1).clamp(min=1.0)
        mean = vectors.sum(dim=1) / count
        variance = (((vectors - mean.unsqueeze(1)) * mask) ** 2).sum(dim=1) / count
        # 1e-8 keeps sqrt's gradient finite at zero variance (one seed); taking off its root, 1e-4,
        # makes that playlist's std exactly 0 again
        std = torch.sqrt(variance + 1e-8) - 1e-4
        if self.words is not None and words is not None:
            mean = mean + _masked_mean(self.words(words), words)
        out1 = self.mlp_mean(mean) + std + mean
        return self.mlp_var(out1) + out1

    def forward(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """Logits over every item (padding and the seeds themselves set to -inf)."""
        hidden = self.encode(seeds, words)
        weight = self.embedding.weight if self.head is None else self.head.weight
        bias = self.bias if self.head is None else self.bias + self.head.bias
        # addmm and in-place masking: one pass over the (batch, items) logits each, not three
        logits = torch.addmm(bias, hidden, weight.T).scatter_(1, seeds, float("-inf"))
        logits[:, PAD] = float("-inf")  # also in rows without padding, which the scatter misses
        return logits

    def scores(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """What recommendations rank by: the logits (seeds and padding at -inf)."""
        return self(seeds, words)


class PlaylistEnsemble(nn.Module):
    """PlaylistModels from different random starts, each trained on minibatches of its own.

    forward gives every member's logits, stacked (members, batch, items): training sums the
    members' losses, scoring averages their log-probabilities. Each member draws its own playlist
    order and seed/target splits, so members differ by more than their starting weights. Averaging
    networks lifted held-out R-precision more than any single-network setting tried.
    """

    def __init__(self, members: list[PlaylistModel]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @property
    def embedding(self) -> nn.Embedding:
        """The first member's track embeddings (what the t-SNE page maps)."""
        return self.members[0].embedding

    def forward(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """Stacked member logits; 3-D seeds (and words) give each member its own batch (training)."""
        n = len(self.members)
        if seeds.dim() == 2:  # one batch for every member
            seeds = seeds.expand(n, *seeds.shape)
            words = None if words is None else words.expand(n, *words.shape)
        per_member_words = [None] * n if words is None else words
        return torch.stack([member(s, w) for member, s, w in zip(self.members, seeds, per_member_words, strict=True)])

    def scores(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """What recommendations rank by: the members' mean log-probabilities, summed one member at
        a time (no stacked copy of every member's logits)."""
        total = torch.log_softmax(self.members[0](seeds, words), dim=1)
        for member in self.members[1:]:
            total += torch.log_softmax(member(seeds, words), dim=1)
        return total / len(self.members)


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, else CPU; an explicit choice that is not available is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but no CUDA GPU is available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for, but Apple MPS is not available")
    return device


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.insert(0, "mps")
    return devices


def build_network(
    n_items: int, n_words: int, *, embedding_dim: int, hidden_dim: int, dropout: float, tied: bool, members: int
) -> PlaylistModel | PlaylistEnsemble:
    """One PlaylistModel, or `members` of them as an ensemble (each from its own random start)."""

    def one() -> PlaylistModel:
        return PlaylistModel(n_items, embedding_dim, hidden_dim, dropout, tied, n_words)

    return one() if members == 1 else PlaylistEnsemble([one() for _ in range(members)])


def parameter_shapes(network_factory) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes a network would have, built on torch's meta device (nothing allocated),
    so a checkpoint's arrays can be checked before any weight is made."""
    with torch.device("meta"):
        network = network_factory()
    return {name: tuple(value.shape) for name, value in network.state_dict().items()}


def all_finite(network: nn.Module) -> bool:
    """True when no weight is NaN or infinite (a diverged run's weights are never kept)."""
    return all(bool(torch.isfinite(p).all()) for p in network.parameters())
