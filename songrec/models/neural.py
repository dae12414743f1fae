"""The headline model: the notebook's network (`songrec.models.network`) as a Recommender.

This module owns what the network does not know: the vocabulary (which corpus tracks it scores),
title words, the validation split, checkpoints, and turning logits into recommendations.
`songrec.training` trains the network; neither module imports the other's caller.
"""

from __future__ import annotations

import math
import os

import numpy as np
import scipy.sparse as sp
import torch

from songrec.checkpoint import CheckpointError
from songrec.config import NetworkSettings, TrainSettings
from songrec.corpus import Corpus
from songrec.distillation import Distillation, FoldInTeacher
from songrec.errors import UserError
from songrec.metrics import evaluate_model
from songrec.models.base import FitCallback, Recommender, Scores, frequent_tracks
from songrec.models.network import (
    PlaylistEnsemble,
    PlaylistModel,
    ServedScores,
    build_network,
    pad_rows,
    parameter_shapes,
    pick_device,
)
from songrec.models.title import normalize_name
from songrec.protocol import make_cases
from songrec.training import (
    TrainingPlaylists,
    TrainResult,
    init_distributed,
    members_of,
    train,
    training_playlists,
)

VALIDATION_CASES = 400
"""Challenge cases scored after each epoch: enough for a stable R-precision, few enough to take seconds."""

SCORED_SEEDS_PER_TRAINED_SEED = 5
"""At recommendation time the network pools at most 5 x max_seeds of the latest seeds: a mean and a
std over 500 tracks are as stable as over more, and longer inputs only cost time (a 250-track MPD
playlist is well inside)."""

EXACT_SERVING_UP_TO = 100_000
"""serving="auto" reads the float32 table up to this many scored tracks (a request takes a few ms there)
and int8 above, where the table's bytes decide the time (benchmarks/RESULTS.md, section 4)."""


class NeuralRecommender(Recommender):
    """Pooled seed embeddings -> two residual MLPs -> a softmax over the vocabulary (see network.py)."""

    name = "neural"
    settings_classes = (NetworkSettings, TrainSettings)
    uses_titles = True

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.network_settings, self.train_settings = self.settings_parts
        self.network: PlaylistModel | PlaylistEnsemble | None = None
        self.vocab_ids = np.zeros(0, dtype=np.int64)
        self.to_item = np.zeros(0, dtype=np.int64)
        self.words: list[str] = []
        self._word_index: dict[str, int] = {}
        device = self.train_settings.device
        self.device = pick_device(device) if device != "auto" else torch.device("cpu")
        self.history: list[dict] = []
        self.best_val_metric = float("nan")
        self.best_epoch = 0
        self.epochs_trained = 0
        self.diverged = ""
        """Why the last training stopped on a non-finite loss ("" when it did not)."""
        self.early_stopped = False
        self._served: ServedScores | None = None

    def config(self) -> dict:
        """The architecture and vocabulary settings: what rebuilds the network from a checkpoint."""
        return self.network_settings.as_dict()

    def build_vocabulary(self, corpus: Corpus) -> None:
        """Items are the tracks in at least min_track_count playlists, the most frequent max_vocab of them."""
        settings = self.network_settings
        self.vocab_ids = frequent_tracks(corpus, settings.min_track_count, settings.max_vocab)
        self._index_vocabulary(corpus.n_tracks)

    def build_words(self, corpus: Corpus) -> None:
        """Title words in at least min_title_count training playlists (none when titles are off)."""
        self.words = []
        min_count = self.network_settings.min_title_count
        if min_count > 0:
            counts = (
                corpus.playlists["name"].map(lambda n: sorted(set(normalize_name(n).split()))).explode().value_counts()
            )
            self.words = sorted(str(w) for w, c in counts.items() if c >= min_count)
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
        s = self.network_settings
        return build_network(
            len(self.vocab_ids),
            len(self.words),
            embedding_dim=s.embedding_dim,
            hidden_dim=s.hidden_dim,
            dropout=s.dropout,
            tied=s.tied,
            members=s.members,
        )

    def training_playlists(self, corpus: Corpus) -> TrainingPlaylists:
        """The corpus playlists as the network's items and title words (see training.training_playlists)."""
        names = corpus.playlists["name"].to_numpy()
        titles = (lambda rows: [self.title_words(names[row]) for row in rows]) if self.words else None
        return training_playlists(corpus.indptr, corpus.indices, self.to_item, titles)

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        settings = self.train_settings
        self.device = pick_device(settings.device)
        group = init_distributed(self.device)
        if group.active and self.device.type == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", group.rank))
            self.device = torch.device("cuda", local_rank % torch.cuda.device_count())
        self.build_vocabulary(corpus)
        if len(self.vocab_ids) < 2:
            raise UserError("too few tracks to train on: lower min_track_count or load more playlists")
        rng = np.random.default_rng(settings.seed)
        n_val = min(int(round(corpus.n_playlists * settings.val_share)), 2 * VALIDATION_CASES)
        order = rng.permutation(corpus.n_playlists)
        train_part = corpus.subset(np.sort(order[n_val:])) if n_val else corpus
        cases = (
            make_cases(corpus.subset(np.sort(order[:n_val])), seed=settings.seed, max_cases=VALIDATION_CASES)
            if n_val
            else []
        )
        self.build_words(train_part)
        playlists = self.training_playlists(train_part)
        if not len(playlists):
            raise UserError("no training playlist has two or more tracks in the vocabulary")
        torch.manual_seed(settings.seed)
        self.network = self.new_network()
        distillation = None
        if settings.init == "als":
            teachers = self.start_from_als(train_part)
            distillation = Distillation.from_settings(teachers, settings, self.device)
        self.network.to(self.device)
        self._served = None

        def validate() -> float:
            self._served = None  # the weights changed since the last table was built
            return evaluate_model(self, cases, corpus.track_artist).overall.r_precision

        self.history, self.epochs_trained, self.best_epoch, self.diverged = [], 0, 0, ""
        result = TrainResult()
        self.fitted = True  # the network recommends from its first step (validation after each epoch)
        try:
            train(
                self.network,
                playlists,
                settings,
                max_seeds=self.network_settings.max_seeds,
                device=self.device,
                validate=validate if cases else None,
                callback=self._recording(callback),
                group=group,
                result=result,
                distillation=distillation,
            )
        finally:  # also after an interrupt: the best epoch's weights were restored and can be used
            self._served = None
            self.early_stopped = result.early_stopped
            self.fitted = result.best_epoch > 0
            self.history, self.best_epoch = result.history, result.best_epoch
            self.epochs_trained, self.diverged = result.epochs_trained, result.diverged
            # the kept epoch's validation R-precision (NaN without validation playlists)
            self.best_val_metric = self.history[self.best_epoch - 1]["val_metric"] if self.best_epoch else math.nan

    def kept_epoch(self) -> str:
        """Which epoch's weights the model holds, in words (what the CLI and the Train page say)."""
        if not self.best_epoch:
            return "stopped before the first epoch ended: the weights are the partly trained ones"
        if math.isnan(self.best_val_metric):
            return f"epoch {self.best_epoch} kept (no validation share: every playlist was learned from)"
        return f"best epoch {self.best_epoch} (validation R-precision {self.best_val_metric:.4f}) kept"

    def start_from_als(self, corpus: Corpus) -> list[FoldInTeacher]:
        """Each network's track embeddings (and untied head) start from ALS item factors of the training
        playlists over the vocabulary (see start_members_from_als); returns those starts as teachers."""
        matrix = corpus.matrix()[:, self.vocab_ids].tocsr()
        settings = self.train_settings
        return start_members_from_als(
            self.network, matrix, settings.seed, settings.init_sweeps, settings.distill_fold_in
        )

    def serving_precision(self) -> str:
        """The table precision recommendations read (see NetworkSettings.serving and EXACT_SERVING_UP_TO)."""
        chosen = self.network_settings.serving
        if chosen != "auto":
            return chosen
        return "float32" if len(self.vocab_ids) <= EXACT_SERVING_UP_TO or self.device.type != "cpu" else "int8"

    def served_scores(self) -> ServedScores:
        """The table recommendations are read from, built once per trained or loaded network."""
        if self._served is None or self.network.training:
            self._served = ServedScores(self.network, self.serving_precision())
        return self._served

    def _recording(self, callback: FitCallback | None) -> FitCallback:
        """The callback, after keeping each epoch in `history` (the app draws it while training runs)."""

        def record(progress) -> bool | None:
            if progress.epoch_end:
                self.epochs_trained = progress.epoch
                self.history = [
                    *self.history,
                    {"epoch": progress.epoch, "loss": progress.loss, "val_metric": progress.val_metric},
                ]
            return callback(progress) if callback is not None else None

        return record

    def _score(self, seeds: np.ndarray) -> Scores | None:
        return self._score_batch([seeds], [None])[0]

    @torch.no_grad()
    def _score_batch(self, seed_lists, titles, limit: int | None = None) -> list[Scores | None]:
        most = self.network_settings.max_seeds * SCORED_SEEDS_PER_TRAINED_SEED
        items = [self.to_item[s] for s in seed_lists]
        items = [i[i > 0][-most:] for i in items]
        words = [self.title_words(t) for t in titles]
        rows = [k for k in range(len(items)) if len(items[k]) or len(words[k])]
        results: list[Scores | None] = [None] * len(seed_lists)
        if not rows:
            return results
        seeds = torch.from_numpy(pad_rows([items[k] for k in rows])).to(self.device)
        title_words = torch.from_numpy(pad_rows([words[k] for k in rows])).to(self.device)
        was_training = self.network.training
        self.network.eval()
        served = self.served_scores()
        if limit is not None and limit < len(self.vocab_ids) and not served.exact:
            logits, positions = served.top(seeds, title_words, limit)
            ids = self.vocab_ids[positions.cpu().numpy() - 1]
            self.network.train(was_training)
        else:
            logits = self.network.scores(seeds, title_words)[:, 1:]
            self.network.train(was_training)
            # a non-finite score is no opinion: it must never rank first (base.top_n also drops it)
            logits = torch.nan_to_num(logits, nan=float("-inf"), posinf=float("-inf"))
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
        self.require_fitted("mapping its embeddings")
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
        """Rebuild the network from a checkpoint, checking every array against the settings first."""
        for key in ("vocab_ids", "history.loss", "history.val", "best"):
            if key not in arrays:
                raise CheckpointError(f"damaged neural checkpoint: no {key!r} array")
        vocab_ids = arrays["vocab_ids"]
        if vocab_ids.ndim != 1 or vocab_ids.dtype.kind not in "iu":
            raise CheckpointError("damaged neural checkpoint: vocab_ids must be a 1-D integer array")
        vocab_ids = vocab_ids.astype(np.int64)
        if len(vocab_ids) and (vocab_ids.min() < 0 or vocab_ids.max() >= self.n_tracks):
            raise CheckpointError(f"damaged neural checkpoint: vocabulary ids outside 0..{self.n_tracks - 1}")
        if len(np.unique(vocab_ids)) != len(vocab_ids):
            raise CheckpointError("damaged neural checkpoint: a track appears twice in the vocabulary")
        words = strings.get("words", [])
        members = len({k.split(".")[2] for k in arrays if k.startswith("net.members.")}) or 1
        if members != self.network_settings.members:
            # checkpoints saved before ensembles say members=3 (the default) for one network: the weights decide
            self.network_settings = self.network_settings.replace(members=members)
            self.settings_parts = (self.network_settings, self.train_settings)
        self.vocab_ids, self.words = vocab_ids, list(words)
        weights = {k.removeprefix("net."): v for k, v in arrays.items() if k.startswith("net.")}
        expected = parameter_shapes(self.new_network)
        if set(weights) != set(expected):
            missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise CheckpointError(f"damaged neural checkpoint: weights missing {missing[:3]} or unknown {extra[:3]}")
        for name, shape in expected.items():
            if tuple(weights[name].shape) != shape or weights[name].dtype.kind != "f":
                raise CheckpointError(
                    f"damaged neural checkpoint: {name} has shape {tuple(weights[name].shape)}, "
                    f"the settings say {shape}"
                )
            if not np.isfinite(weights[name]).all():
                raise CheckpointError(f"damaged neural checkpoint: {name} holds NaN or infinite weights")
        self._index_vocabulary(self.n_tracks)
        self._word_index = {w: i + 1 for i, w in enumerate(self.words)}
        self.network = self.new_network()
        self.network.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
        self.network.to(self.device).eval()
        self._served = None
        losses, scores, best = arrays["history.loss"], arrays["history.val"], arrays["best"]
        if len(losses) != len(scores) or best.shape != (3,):
            raise CheckpointError("damaged neural checkpoint: training history arrays of different lengths")
        self.history = [
            {"epoch": i + 1, "loss": float(loss), "val_metric": float(val)}
            for i, (loss, val) in enumerate(zip(losses, scores, strict=True))
        ]
        self.best_val_metric, best_epoch, epochs = best.tolist()
        self.best_epoch, self.epochs_trained = int(best_epoch), int(epochs)


def start_members_from_als(
    network: torch.nn.Module, matrix: sp.csr_matrix, seed: int, sweeps: int, fold_in: str = "shared"
) -> list[FoldInTeacher]:
    """Network j's track embeddings (and untied head) start from the factors of its own ALS fit
    (seed + j, `sweeps` sweeps: a start, not a solution) of `matrix` (playlists x vocabulary items
    1..n, built once), rescaled to the random start's spread (dim ** -0.5 per entry): different ALS
    solutions made the averaged networks differ more, and that lifted held-out R-precision by about
    0.003 over one shared start. Returns each network's start as an ALS teacher answering by `fold_in`
    (songrec.distillation)."""
    from songrec.models.als import ALSSettings, item_factors

    teachers = []
    for number, member in enumerate(members_of(network)):
        settings = ALSSettings(factors=member.embedding.embedding_dim, iterations=sweeps, seed=seed + number)
        factors = item_factors(matrix, settings)
        scale = factors.shape[1] ** -0.5 / max(float(np.sqrt((factors**2).mean())), 1e-12)
        factors *= scale
        # in the rescaled factors ALS's own fold-in needs its L2 rescaled the same way (scores unchanged)
        padded = torch.cat([torch.zeros(1, factors.shape[1]), torch.from_numpy(factors).float()])
        teachers.append(FoldInTeacher(padded, settings.l2 * scale**2, settings.alpha, fold_in))
        tables = [member.embedding.weight] + ([member.head.weight] if member.head is not None else [])
        with torch.no_grad():
            for table in tables:  # row 0 is padding: the vocabulary's items are rows 1..n
                table[1 : matrix.shape[1] + 1] = torch.from_numpy(factors).to(table.device)
    return teachers
