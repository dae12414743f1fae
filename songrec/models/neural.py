"""The notebook's architecture, made to work: pooled track embeddings -> two residual MLPs -> scores.

out1 = mlp_mean(mean) + std + mean; out2 = mlp_var(out1) + out1; scores = out2 . E_track + b_track
(tied head, default) or a Linear head (untied, as the notebook had).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from songrec.config import TrainConfig
from songrec.corpus import Corpus
from songrec.models.base import FitCallback, Recommender, Scores, frequent_tracks
from songrec.models.title import normalize_name

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


class NeuralRecommender(Recommender):
    """The headline model behind the shared Recommender interface."""

    name = "neural"
    uses_titles = True

    def __init__(self, config: TrainConfig | None = None, **overrides) -> None:
        super().__init__()
        base = config or TrainConfig()
        self.train_config = TrainConfig(**{**base.__dict__, **overrides})
        self.network: PlaylistModel | PlaylistEnsemble | None = None
        self.vocab_ids = np.zeros(0, dtype=np.int64)
        self.to_item = np.zeros(0, dtype=np.int64)
        self.words: list[str] = []
        self._word_index: dict[str, int] = {}
        self.device = (
            pick_device(self.train_config.device) if self.train_config.device != "auto" else torch.device("cpu")
        )
        self.history: list[dict] = []
        self.best_val_metric = float("nan")
        self.best_epoch = 0
        self.epochs_trained = 0

    def config(self) -> dict:
        return dict(self.train_config.__dict__)

    def build_vocabulary(self, corpus: Corpus) -> None:
        """Items are the tracks in at least min_track_count playlists, the most frequent max_vocab of them."""
        self.vocab_ids = frequent_tracks(corpus, self.train_config.min_track_count, self.train_config.max_vocab)
        self._index_vocabulary(corpus.n_tracks)

    def build_words(self, corpus: Corpus) -> None:
        """Title words in at least min_title_count training playlists (none when titles are off)."""
        self.words = []
        if self.train_config.min_title_count > 0:
            counts = (
                corpus.playlists["name"].map(lambda n: sorted(set(normalize_name(n).split()))).explode().value_counts()
            )
            self.words = sorted(str(w) for w, c in counts.items() if c >= self.train_config.min_title_count)
        self._word_index = {w: i + 1 for i, w in enumerate(self.words)}

    def title_words(self, title: str | None) -> np.ndarray:
        """Word ids of a title (known words only, each once)."""
        if not title or not self._word_index:
            return np.zeros(0, dtype=np.int64)
        ids = {self._word_index[w] for w in normalize_name(title).split() if w in self._word_index}
        return np.asarray(sorted(ids), dtype=np.int64)

    def _index_vocabulary(self, n_tracks: int) -> None:
        self.to_item = np.zeros(n_tracks, dtype=np.int64)
        self.to_item[self.vocab_ids] = np.arange(1, len(self.vocab_ids) + 1)

    def new_network(self) -> PlaylistModel | PlaylistEnsemble:
        c = self.train_config
        if c.members < 1:
            raise ValueError(f"members must be 1 or more, not {c.members}")

        def one() -> PlaylistModel:
            return PlaylistModel(len(self.vocab_ids), c.embedding_dim, c.hidden_dim, c.dropout, c.tied, len(self.words))

        return one() if c.members == 1 else PlaylistEnsemble([one() for _ in range(c.members)])

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        from songrec.training import train

        train(self, corpus, callback)

    def _score(self, seeds: np.ndarray) -> Scores | None:
        return self._score_batch([seeds], [None])[0]

    @torch.no_grad()
    def _score_batch(self, seed_lists, titles, limit: int | None = None) -> list[Scores | None]:
        if self.network is None:
            raise RuntimeError("the neural model is not trained yet: call fit() or load()")
        items = [self.to_item[s] for s in seed_lists]
        items = [i[i > 0][-self.train_config.max_seeds * 5 :] for i in items]
        words = [self.title_words(t) for t in titles]
        rows = [k for k in range(len(items)) if len(items[k]) or len(words[k])]
        results: list[Scores | None] = [None] * len(seed_lists)
        if not rows:
            return results
        seeds = torch.from_numpy(pad_rows([items[k] for k in rows])).to(self.device)
        title_words = torch.from_numpy(pad_rows([words[k] for k in rows])).to(self.device)
        was_training = self.network.training
        self.network.eval()
        logits = self.network.scores(seeds, title_words)[:, 1:]
        self.network.train(was_training)
        if limit is not None and limit < logits.shape[1]:
            # only the best `limit` leave the device: a top-k there beats handing 300k scores to numpy
            logits, positions = torch.topk(logits, limit, dim=1)
            ids = self.vocab_ids[positions.cpu().numpy()]
        else:
            ids = np.broadcast_to(self.vocab_ids, logits.shape)
        values = logits.float().cpu().numpy()
        for r, k in enumerate(rows):
            results[k] = (ids[r], values[r])
        return results

    def track_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(track ids, their learned embeddings) for every track the network scores."""
        if self.network is None:
            raise RuntimeError("the neural model is not trained yet")
        weights = self.network.embedding.weight.detach()[1:].float().cpu().numpy()
        return self.vocab_ids.copy(), weights

    def _state(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        state["vocab_ids"] = self.vocab_ids
        state["history.loss"] = np.asarray([h["loss"] for h in self.history], dtype=np.float64)
        state["history.val"] = np.asarray([h["val_metric"] for h in self.history], dtype=np.float64)
        state["best"] = np.asarray([self.best_val_metric, self.best_epoch, self.epochs_trained], dtype=np.float64)
        return state

    def _strings(self) -> dict[str, list[str]]:
        return {"words": self.words}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        self.vocab_ids = arrays["vocab_ids"].astype(np.int64)
        self._index_vocabulary(self.n_tracks)
        self.words = strings.get("words", [])
        self._word_index = {w: i + 1 for i, w in enumerate(self.words)}
        # a checkpoint's weights say how many networks it holds (those saved before ensembles: one)
        self.train_config.members = len({k.split(".")[2] for k in arrays if k.startswith("net.members.")}) or 1
        self.network = self.new_network()
        weights = {
            k.removeprefix("net."): torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("net.")
        }
        self.network.load_state_dict(weights)
        self.network.to(self.device).eval()
        self.history = [
            {"epoch": i + 1, "loss": float(loss), "val_metric": float(val)}
            for i, (loss, val) in enumerate(zip(arrays["history.loss"], arrays["history.val"], strict=True))
        ]
        self.best_val_metric, best_epoch, epochs = arrays["best"].tolist()
        self.best_epoch, self.epochs_trained = int(best_epoch), int(epochs)
