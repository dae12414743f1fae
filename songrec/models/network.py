"""The notebook's network in torch alone: pooled track embeddings -> two residual MLPs -> scores.

out1 = mlp_mean(mean) + std + mean; out2 = mlp_var(out1) + out1; scores = out2 . E_track + b_track
(tied head, default) or a Linear head (untied, as the notebook had). Nothing here knows about
corpora, training or checkpoints: `songrec.models.neural` wraps it as a Recommender and
`songrec.training` trains it, and both import this module (never each other).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from songrec.config import SERVING_PRECISIONS
from songrec.errors import UserError

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
        self.sparse_head = False
        """Candidate lookups of the head's rows send sparse gradients (set by training, not under DDP)."""

    def encode(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """Mean and std of the real (non-padding) seed embeddings through the two residual MLPs.

        Only the real seeds are looked up (a flat list, summed per playlist with index_add), not the
        padded (batch, width) block: seed counts are log-uniform in 1..100, so most of a padded
        batch would be padding, and dropout, squares and sums over it cost most of a training step."""
        rows, columns = torch.nonzero(seeds != PAD, as_tuple=True)
        vectors = self.dropout(self.embedding(seeds[rows, columns]))
        batch, dim = seeds.shape[0], self.embedding.embedding_dim
        count = torch.bincount(rows, minlength=batch).to(vectors.dtype).clamp(min=1.0).unsqueeze(1)
        total = vectors.new_zeros(batch, dim).index_add_(0, rows, vectors)
        squares = vectors.new_zeros(batch, dim).index_add_(0, rows, vectors * vectors)
        mean = total / count
        variance = (squares / count - mean * mean).clamp(min=0.0)
        # 1e-8 keeps sqrt's gradient finite at zero variance (one seed); taking off its root, 1e-4,
        # makes that playlist's std exactly 0 again
        std = torch.sqrt(variance + 1e-8) - 1e-4
        if self.words is not None and words is not None:
            mean = mean + _masked_mean(self.words(words), words)
        out1 = self.mlp_mean(mean) + std + mean
        return self.mlp_var(out1) + out1

    @property
    def output_weight(self) -> torch.Tensor:
        """The (items + 1, dim) matrix scores are dot products with: the embeddings, or the untied head."""
        return self.embedding.weight if self.head is None else self.head.weight

    @property
    def output_bias(self) -> torch.Tensor:
        return self.bias if self.head is None else self.bias + self.head.bias

    def forward(
        self, seeds: torch.Tensor, words: torch.Tensor | None = None, candidates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits over every item (padding and the seeds themselves set to -inf), or, given sorted
        `candidates` (a sampled softmax), logits over those items only (seeds among them at -inf)."""
        hidden = self.encode(seeds, words)
        if candidates is not None:
            return self.candidate_logits(hidden, seeds, candidates)
        weight, bias = self.output_weight, self.output_bias
        # addmm and in-place masking: one pass over the (batch, items) logits each, not three
        logits = torch.addmm(bias, hidden, weight.T).scatter_(1, seeds, float("-inf"))
        logits[:, PAD] = float("-inf")  # also in rows without padding, which the scatter misses
        return logits

    def candidate_logits(self, hidden: torch.Tensor, seeds: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(batch, candidates) logits for sorted distinct item ids: only those rows of the head are read,
        and (with sparse_head) only they receive a gradient, so a step costs the candidates, not the vocabulary."""
        rows = F.embedding(candidates, self.output_weight, sparse=self.sparse_head)
        bias = self.bias[candidates] if self.head is None else self.bias[candidates] + self.head.bias[candidates]
        logits = torch.addmm(bias, hidden, rows.T)
        return logits.masked_fill_(seed_mask(seeds, candidates), float("-inf"))

    def scores(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """What recommendations rank by: the logits (seeds and padding at -inf)."""
        return self(seeds, words)


def seed_mask(seeds: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(batch, candidates) True where a sorted candidate is one of that row's seeds (PAD is never a candidate)."""
    position = torch.searchsorted(candidates, seeds).clamp_(max=len(candidates) - 1)
    hit = (candidates[position] == seeds) & (seeds != PAD)
    mask = torch.zeros(seeds.shape[0], len(candidates) + 1, dtype=torch.bool, device=seeds.device)
    mask.scatter_(1, torch.where(hit, position, len(candidates)), True)
    return mask[:, :-1]


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

    def forward(
        self, seeds: torch.Tensor, words: torch.Tensor | None = None, candidates: list[torch.Tensor] | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        """Stacked member logits; 3-D seeds (and words) give each member its own batch (training).

        With `candidates` (one sorted id tensor per member: a sampled softmax), a list of each
        member's (batch, its candidates) logits, since members sample different candidate sets."""
        n = len(self.members)
        if seeds.dim() == 2:  # one batch for every member
            seeds = seeds.expand(n, *seeds.shape)
            words = None if words is None else words.expand(n, *words.shape)
        per_member_words = [None] * n if words is None else words
        if candidates is not None:
            return [m(s, w, c) for m, s, w, c in zip(self.members, seeds, per_member_words, candidates, strict=True)]
        return torch.stack([member(s, w) for member, s, w in zip(self.members, seeds, per_member_words, strict=True)])

    def scores(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """What recommendations rank by: the members' mean log-probabilities, summed one member at
        a time (no stacked copy of every member's logits)."""
        total = torch.log_softmax(self.members[0](seeds, words), dim=1)
        for member in self.members[1:]:
            total += torch.log_softmax(member(seeds, words), dim=1)
        return total / len(self.members)


SELECTION_STRIDE = 64
"""best_unordered samples every 64th score of a row: with track ids in order of popularity, the sample
covers every popularity band."""
SELECTION_MARGIN = 1.5
"""best_unordered's threshold is the sample's (1.5 count / 64 + 8)-th score, so that enough scores lie above it."""


def best_unordered(scores: torch.Tensor, count: int) -> torch.Tensor:
    """(batch, count) ids of each row's `count` highest scores, in no particular order.

    A row's every SELECTION_STRIDE-th score estimates the cut: the scores above a threshold a little
    below it are found in one comparison, and only those (a few thousand) are ranked. At 300,000
    scores and count 2,000 on one thread: p50 1.4 / p99 3.7 ms, against 2.7 / 3.8 for torch.topk and
    0.8 / 6.4 for np.argpartition, whose introselect slows down on some single-seed queries. When the
    estimate leaves fewer than `count` above it, the row falls back to torch.topk."""
    if count >= scores.shape[1]:
        return torch.arange(scores.shape[1]).expand(scores.shape[0], -1)
    chosen = []
    for row in scores:
        sample = row[::SELECTION_STRIDE]
        depth = min(len(sample), math.ceil(count / SELECTION_STRIDE * SELECTION_MARGIN) + 8)
        threshold = torch.topk(sample, depth).values[-1]
        above = torch.nonzero(row >= threshold).squeeze(1)
        if len(above) < count:
            chosen.append(torch.topk(row, count, sorted=False).indices)
        else:
            chosen.append(above[torch.topk(row[above], count, sorted=False).indices])
    return torch.stack(chosen)


INT8_COLUMN_STEP = 8
"""An int8 table's columns are padded with zeros to a multiple of this (no score changes): the integer
matrix product is exact for every width measured, but one of a single column was not."""

RESCORED_PER_ANSWER = 4
"""An approximate table hands its best 4 x n (at least MIN_RESCORED, chosen by best_unordered) on to
exact scoring: recall@500 against exact scoring is 0.998-0.9995 at 300,000 tracks (benchmarks/RESULTS.md;
8 x n did not raise it, 2 x n lowered it to 0.995 for 0.5 ms)."""
MIN_RESCORED = 200
SERVED_ENERGY = 0.9
"""An ensemble's approximate table keeps the fewest principal directions (in steps of 32) of the
members' concatenated output rows that hold this share of their energy. Members that start from the
same data's ALS factors stay close, so three networks of 128 need 224-288 directions, not 384 (the
more sweeps their ALS starts had, the fewer)."""


def principal_directions(weights: torch.Tensor, energy: float, step: int = 32) -> torch.Tensor | None:
    """(columns, r) orthonormal directions holding `energy` of the rows' squared norm, or None when
    that needs every column (projecting would save nothing)."""
    values, vectors = torch.linalg.eigh((weights.T @ weights).double())
    values, vectors = values.flip(0).clamp(min=0.0), vectors.flip(1)
    share = values.cumsum(0) / values.sum().clamp(min=1e-300)
    needed = int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype))) + 1
    rank = min(weights.shape[1], step * math.ceil(needed / step))
    return None if rank >= weights.shape[1] else vectors[:, :rank].float().contiguous()


class ServedScores:
    """What a trained network's recommendations read: exact float32 scores, or an approximate table
    (bfloat16 or int8) whose best candidates are rescored exactly.

    A member's log-normaliser is the same for every track, so the members' mean log-probability
    ranks tracks as the mean of their logits does: mean_j(h_j . w_jt + b_jt) = h . W_t / m + mean b_t
    with h and W_t the members' hidden states and output rows side by side. That concatenated table
    is served in one matrix product per request, projected onto its principal directions (see
    SERVED_ENERGY) and stored in bfloat16 or int8 (one scale per row): at 300,000 tracks and three
    networks an eighth or less of the float32 bytes. The best `RESCORED_PER_ANSWER x n` are then
    rescored exactly from each member's float32 weights, so only a track missed by the approximate
    pass can be missing from the answer. Approximate answers carry the members' mean logits, which
    differ from their mean log-probabilities by one constant per playlist.
    """

    def __init__(self, network: PlaylistModel | PlaylistEnsemble, precision: str) -> None:
        if precision not in SERVING_PRECISIONS:
            raise ValueError(f"serving precision must be one of {SERVING_PRECISIONS}, not {precision!r}")
        self.network = network
        self.members = list(network.members) if isinstance(network, PlaylistEnsemble) else [network]
        self.precision = precision
        self.projection: torch.Tensor | None = None
        self.table = self.scale = self.bias = None
        if precision == "float32":
            return
        with torch.no_grad():
            weights = torch.cat([m.output_weight.detach().float().cpu() for m in self.members], dim=1)
            self.bias = torch.stack([m.output_bias.detach().float().cpu() for m in self.members]).mean(dim=0)
            if len(self.members) > 1:
                self.projection = principal_directions(weights, SERVED_ENERGY)
            table = weights if self.projection is None else weights @ self.projection
            del weights
            if precision == "bfloat16":
                self.table = table.to(torch.bfloat16)
            else:
                scale = table.abs().amax(dim=1).clamp(min=1e-12) / 127.0
                codes = torch.round(table / scale[:, None]).to(torch.int8)
                self.table = F.pad(codes, (0, -codes.shape[1] % INT8_COLUMN_STEP))
                self.scale = scale

    @property
    def exact(self) -> bool:
        return self.precision == "float32"

    @property
    def rank(self) -> int:
        """Columns of the approximate table (0 when serving is exact)."""
        return 0 if self.table is None else int(self.table.shape[1])

    @torch.no_grad()
    def hidden(self, seeds: torch.Tensor, words: torch.Tensor | None) -> torch.Tensor:
        """(batch, members, dim) hidden states."""
        return torch.stack([m.encode(seeds, words) for m in self.members], dim=1)

    @torch.no_grad()
    def approximate(self, hidden: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """(batch, items + 1) approximate mean logits from the served table (seeds and padding at -inf)."""
        query = hidden.flatten(1).float().cpu() / len(self.members)
        if self.projection is not None:
            query = query @ self.projection
        if self.precision == "int8":
            logits = self._int8_product(query)
        else:
            logits = F.linear(query.to(self.table.dtype), self.table).float()
        logits.add_(self.bias)
        logits.scatter_(1, seeds.cpu(), float("-inf"))
        logits[:, PAD] = float("-inf")
        return logits

    def _int8_product(self, query: torch.Tensor) -> torch.Tensor:
        """(batch, items + 1) query . table rows in float32, from int8 codes of both sides: the query gets one
        scale per row like the table, and the product runs in int32 (`torch._int_mm`), twice as fast at
        300,000 tracks as dequantising the table to bfloat16 (`_weight_int8pack_mm`, which also crashes on
        batches whose width is not a multiple of 8)."""
        query_scale = query.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        codes = torch.round(query / query_scale).to(torch.int8)
        codes = F.pad(codes, (0, self.table.shape[1] - codes.shape[1]))
        return torch._int_mm(codes, self.table.T).float().mul_(self.scale * query_scale)

    @torch.no_grad()
    def scores(self, seeds: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, items + 1): exactly the network's scores (float32), or the approximate mean logits."""
        if self.exact:
            return self.network.scores(seeds, words)
        return self.approximate(self.hidden(seeds, words), seeds)

    @torch.no_grad()
    def top(self, seeds: torch.Tensor, words: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, item ids) of the best n per row: exact float32 scores, or candidates from the
        approximate pass ranked by their exact mean logits."""
        if self.exact:
            scores = self.scores(seeds, words)
            return torch.topk(scores, min(n, scores.shape[1] - 1), dim=1)
        hidden = self.hidden(seeds, words)
        approximate = self.approximate(hidden, seeds)
        count = min(approximate.shape[1] - 1, max(RESCORED_PER_ANSWER * n, MIN_RESCORED))
        candidates = best_unordered(approximate, count)
        exact = torch.zeros(candidates.shape, device=hidden.device)
        flat = candidates.reshape(-1).to(hidden.device)
        for j, member in enumerate(self.members):
            rows = member.output_weight.detach().index_select(0, flat).float().reshape(*candidates.shape, -1)
            bias = member.output_bias.detach().index_select(0, flat).float().reshape(candidates.shape)
            exact += torch.einsum("bd,bcd->bc", hidden[:, j].float(), rows) + bias
        exact = exact.cpu() / len(self.members)
        exact.masked_fill_(~torch.isfinite(approximate.gather(1, candidates)), float("-inf"))
        values, order = torch.topk(exact, min(n, count), dim=1)
        return values, candidates.gather(1, order)


def device_problem(requested: str) -> str:
    """Why an explicitly requested device cannot be used here ("" when it can, and always for "auto")."""
    if requested == "auto":
        return ""
    kind = torch.device(requested).type
    if kind == "cuda" and not torch.cuda.is_available():
        return "device 'cuda' asked for, but no CUDA GPU is available"
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "device 'mps' asked for, but Apple MPS is not available"
    return ""


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, else CPU; an explicit choice that is not available is the user's mistake."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    problem = device_problem(requested)
    if problem:
        raise UserError(problem)
    return torch.device(requested)


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
