"""The student notebook's model, trained exactly as the notebook trained it: the collapse, replayed.

The notebook this project grew from recommended the same 15 songs for every playlist. This model
does what it did, so the failure can be measured beside the fix:

- data: playlists of at least 30 tracks, cut to their first 20 as the input; the tracks at
  positions 21-30 are its ten "training sets" (training set k is the track at position 20 + k);
- vocabulary: "track name - artist name" strings (two URIs of one song are one word);
- network: 50-dim embeddings (torch's default N(0, 1) start) -> mean and std over the 20 inputs
  -> out1 = mlp_mean(mean) + std + mean -> out2 = mlp_var(out1) + out1 (MLPs 50 -> 100 -> 50)
  -> an untied Linear 50 -> n head;
- training: the input embeddings are looked up once, before the loop (later steps reuse the
  stale lookup, `retain_graph`), and per training set and epoch the loss of every playlist is
  summed into one SGD step (lr 1e-5, momentum 0.9): 2 epochs of 1 training set, two steps.

Each cause has a setting that removes it on its own (`embeddings_in_step`, `minibatches` with
`optimizer`, `epochs`/`training_sets`, `tied_head`), so a class can switch fixes on one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from songrec.corpus import Corpus
from songrec.errors import UserError
from songrec.models.base import FitCallback, FitProgress, Recommender, Scores
from songrec.models.network import MLP
from songrec.settings import Settings, setting

MIN_TRACKS = 30
"""The notebook kept playlists of at least this many tracks..."""
INPUT_TRACKS = 20
"""...fed their first 20 to the network..."""
MAX_TRAINING_SETS = MIN_TRACKS - INPUT_TRACKS
"""...and used positions 21-30 as its ten training sets."""
LOSS_CHUNK = 256
"""Playlists per forward pass of the summed step: the gradient is the same as one pass over all
of them, without (playlists x vocabulary) logits in memory at once."""


@dataclass(frozen=True)
class NotebookSettings(Settings):
    """The notebook's knobs (learning rate, files, training sets, epochs), then one switch per cause."""

    owner: ClassVar[str] = "notebook"

    learning_rate: float = setting(1e-5, "Step size; the notebook's 1e-5", low=1e-8, high=1.0, log=True)
    files: int = setting(
        0,
        "Train on the playlists of the first N slice files (0 = all): the notebook's number of files",
        low=0,
        label="Files",
    )
    training_sets: int = setting(
        1,
        "Target positions 21.. used, one step each per epoch: the notebook's training sets",
        low=1,
        high=MAX_TRAINING_SETS,
    )
    epochs: int = setting(2, "Passes over the training sets; the notebook's 2", low=1, high=1000)
    embeddings_in_step: bool = setting(
        False,
        "Fix 1: look the input embeddings up inside every step (the notebook looked them up once, before the loop)",
    )
    minibatches: bool = setting(
        False,
        "Fix 2: a step per minibatch of playlists, on their mean loss "
        "(the notebook took one step on the summed loss of every playlist)",
    )
    optimizer: str = setting("sgd", "sgd (momentum 0.9, the notebook's) or adam", choices=("sgd", "adam"))
    batch_size: int = setting(64, "Playlists per minibatch (with minibatches)", low=1, high=65_536)
    tied_head: bool = setting(
        False, "Fix 4: score tracks with the input embeddings (tied) instead of an untied Linear 50 -> n head"
    )
    embedding_dim: int = setting(50, "Embedding width; the notebook's 50", low=2, high=1024)
    hidden_dim: int = setting(100, "Hidden width of both MLPs; the notebook's 100", low=2, high=4096)
    seed: int = setting(0, "Seeds the starting weights and the minibatch order", low=0)


class NotebookNetwork(nn.Module):
    """The notebook's network: pooled embeddings, two residual MLPs, a head over the vocabulary."""

    def __init__(self, n_words: int, dim: int, hidden: int, tied: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, dim)  # torch's default N(0, 1) start, as in the notebook
        self.mlp_mean = MLP(dim, hidden)
        self.mlp_var = MLP(dim, hidden)
        self.head = None if tied else nn.Linear(dim, n_words)
        self.bias = nn.Parameter(torch.zeros(n_words)) if tied else None

    def encode(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(playlists, tracks, dim) looked-up embeddings -> (playlists, dim); `mask` marks real tracks."""
        if mask is None:
            mean, std = vectors.mean(dim=1), vectors.std(dim=1, unbiased=False)
        else:
            weights = mask.unsqueeze(-1).to(vectors.dtype)
            count = weights.sum(dim=1).clamp(min=1.0)
            mean = (vectors * weights).sum(dim=1) / count
            std = torch.sqrt((((vectors - mean.unsqueeze(1)) * weights) ** 2).sum(dim=1) / count)
        out1 = self.mlp_mean(mean) + std + mean
        return self.mlp_var(out1) + out1

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            return self.head(hidden)
        return torch.addmm(self.bias, hidden, self.embedding.weight.T)


class NotebookRecommender(Recommender):
    """The notebook's model and training, behind the Recommender interface (a replay, not a rival)."""

    name = "notebook"
    settings_classes: ClassVar[tuple[type[Settings], ...]] = (NotebookSettings,)
    settings: NotebookSettings

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.network: NotebookNetwork | None = None
        self.to_word = np.zeros(0, dtype=np.int64)
        """Per track id, its vocabulary word ("name - artist"), -1 when not in the vocabulary."""
        self.word_tracks = np.zeros(0, dtype=np.int64)
        """Per word, the track id recommended for it (its most frequent URI)."""
        self.words: list[str] = []
        self.losses: list[float] = []
        """Summed (or minibatch mean) loss of each step, in order."""

    # --- data, as the notebook prepared it -------------------------------------------------------------------

    def training_corpus(self, corpus: Corpus) -> Corpus:
        """The playlists of the first `files` slice files (all when 0), in corpus order."""
        if not self.settings.files:
            return corpus
        files = list(dict.fromkeys(corpus.playlists["file"].astype(str).tolist()))[: self.settings.files]
        return corpus.subset(corpus.rows_from_files(files))

    def build_vocabulary(self, corpus: Corpus) -> None:
        """Words are "track name - artist name" strings of the corpus's tracks; each word is
        recommended as its most frequent URI."""
        counts = corpus.track_counts
        used = np.flatnonzero(counts > 0)
        names = corpus.tracks["name"].astype(str).to_numpy()[used]
        keys = names + " - " + corpus.tracks["artist"].astype(str).to_numpy()[used]
        codes, uniques = pd.factorize(keys)
        self.words = [str(w) for w in uniques]
        self.to_word = np.full(corpus.n_tracks, -1, dtype=np.int64)
        self.to_word[used] = codes
        order = np.lexsort((used, -counts[used]))  # most frequent first, ties by id
        _, first = np.unique(codes[order], return_index=True)  # each word's first, most frequent, track
        self.word_tracks = used[order[first]].astype(np.int64)

    def notebook_examples(self, corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
        """(inputs: playlists x 20 words, targets: playlists x 10 words) of the playlists of 30+ tracks."""
        rows = np.flatnonzero(corpus.lengths() >= MIN_TRACKS)
        if len(rows) == 0:
            return np.zeros((0, INPUT_TRACKS), np.int64), np.zeros((0, MAX_TRAINING_SETS), np.int64)
        positions = corpus.indptr[rows][:, None] + np.arange(MIN_TRACKS)
        words = self.to_word[corpus.indices[positions]]
        return words[:, :INPUT_TRACKS], words[:, INPUT_TRACKS:MIN_TRACKS]

    # --- training, as the notebook trained ------------------------------------------------------------------

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        s = self.settings
        corpus = self.training_corpus(corpus)
        self.build_vocabulary(corpus)
        inputs, targets = self.notebook_examples(corpus)
        if len(inputs) == 0:
            raise UserError(f"the notebook model needs playlists of at least {MIN_TRACKS} tracks; none were given")
        torch.manual_seed(s.seed)
        rng = np.random.default_rng(s.seed)
        self.network = NotebookNetwork(len(self.words), s.embedding_dim, s.hidden_dim, s.tied_head)
        network = self.network.train()
        if s.optimizer == "sgd":
            optimizer = torch.optim.SGD(network.parameters(), lr=s.learning_rate, momentum=0.9)
        else:
            optimizer = torch.optim.Adam(network.parameters(), lr=s.learning_rate)
        inputs_t, targets_t = torch.from_numpy(inputs), torch.from_numpy(targets)
        # the notebook's first cause: one lookup before the loop; every later step reads these stale
        # vectors (their graph kept with retain_graph), so the embeddings' updates never reach training
        looked_up = None if s.embeddings_in_step else network.embedding(inputs_t)
        batches = math.ceil(len(inputs) / s.batch_size) if s.minibatches else 1
        total = s.epochs * s.training_sets * batches
        self.losses = []
        for _ in range(s.epochs):
            for target in range(s.training_sets):
                if s.minibatches:
                    order = rng.permutation(len(inputs))
                    groups = [order[i : i + s.batch_size] for i in range(0, len(order), s.batch_size)]
                else:
                    groups = [np.arange(len(inputs))]
                for group in groups:
                    optimizer.zero_grad(set_to_none=True)
                    scale = 1.0 / len(group) if s.minibatches else 1.0
                    loss = self._backward(network, inputs_t, targets_t[:, target], looked_up, group, scale)
                    optimizer.step()
                    self.losses.append(loss)
                    if callback is not None:
                        done = len(self.losses)
                        if callback(FitProgress(done, total, "steps")) is False:
                            return

    @staticmethod
    def _backward(network, inputs, targets, looked_up, rows: np.ndarray, scale: float) -> float:
        """Gradients of `scale` x the summed loss over `rows`, a chunk of playlists at a time; returns
        that loss (scale: 1 / rows for a minibatch mean)."""
        total = 0.0
        for start in range(0, len(rows), LOSS_CHUNK):
            chunk = torch.from_numpy(rows[start : start + LOSS_CHUNK])
            vectors = network.embedding(inputs[chunk]) if looked_up is None else looked_up[chunk]
            logits = network.logits(network.encode(vectors))
            loss = F.cross_entropy(logits, targets[chunk], reduction="sum") * scale
            loss.backward(retain_graph=looked_up is not None)
            total += float(loss.detach())
        return total

    # --- scoring ----------------------------------------------------------------------------------------------

    def _score(self, seeds: np.ndarray) -> Scores | None:
        return self._score_batch([seeds], [None])[0]

    @torch.no_grad()
    def _score_batch(self, seed_lists, titles, limit: int | None = None) -> list[Scores | None]:
        if self.network is None:
            raise RuntimeError("the notebook model is not trained yet: call fit() or load()")
        words = [np.unique(self.to_word[s][self.to_word[s] >= 0]) for s in seed_lists]
        rows = [k for k, w in enumerate(words) if len(w)]
        results: list[Scores | None] = [None] * len(seed_lists)
        if not rows:
            return results
        width = max(len(words[k]) for k in rows)
        # padded with the row's own seed words, repeated: masked out of the pooling, and seeds anyway
        ids = np.stack([np.resize(words[k], width) for k in rows])
        mask = np.arange(width) < np.asarray([len(words[k]) for k in rows])[:, None]
        ids_t = torch.from_numpy(ids)
        self.network.eval()
        logits = self.network.logits(self.network.encode(self.network.embedding(ids_t), torch.from_numpy(mask)))
        logits.scatter_(1, ids_t, float("-inf"))  # never a seed
        if limit is not None and limit < logits.shape[1]:
            values, positions = torch.topk(logits, limit, dim=1)
            tracks = self.word_tracks[positions.numpy()]
        else:
            values, tracks = logits, np.broadcast_to(self.word_tracks, logits.shape)
        values = values.numpy()
        for r, k in enumerate(rows):
            results[k] = (tracks[r], values[r])
        return results

    def track_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(track ids, input embeddings) of every word, each as its most frequent URI (for the t-SNE map)."""
        if self.network is None:
            raise RuntimeError("the notebook model is not trained yet")
        return self.word_tracks.copy(), self.network.embedding.weight.detach().numpy().copy()

    # --- checkpoints --------------------------------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        if self.network is None:
            raise RuntimeError("the notebook model is not trained yet: nothing to save")
        state = {f"net.{k}": v.detach().numpy() for k, v in self.network.state_dict().items()}
        state["to_word"] = self.to_word
        state["word_tracks"] = self.word_tracks
        state["losses"] = np.asarray(self.losses, dtype=np.float64)
        return state

    def _strings(self) -> dict[str, list[str]]:
        return {"words": self.words}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        s = self.settings
        self.to_word = arrays["to_word"].astype(np.int64)
        self.word_tracks = arrays["word_tracks"].astype(np.int64)
        self.words = strings.get("words", [])
        self.losses = arrays["losses"].tolist()
        self.network = NotebookNetwork(len(self.word_tracks), s.embedding_dim, s.hidden_dim, s.tied_head)
        weights = {
            k.removeprefix("net."): torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("net.")
        }
        self.network.load_state_dict(weights)
        self.network.eval()
