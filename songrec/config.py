"""The neural model's settings, split by concern, as typed Settings (no torch here, so the CLI and the
app build their options and forms without loading it).

- NetworkSettings: the architecture and its vocabulary, what a checkpoint stores (as nanoGPT's GPTConfig);
- TrainSettings: how one run trains it (optimiser, epochs, batches, seed, device, validation share);
- DataSettings: which of the loaded slice files a run reads.

The defaults are the best settings measured on two random held-out 10% splits of the MPD sample (see
README, Results) that train within 10 minutes on 2 CPU cores for the whole sample: batches of 64,
30 epochs, three networks averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

from songrec.settings import Settings, setting

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class NetworkSettings(Settings):
    owner = "neural"
    embedding_dim: int = setting(128, "size of each track embedding", low=4, high=1024, step=8,
                                 label="Embedding size")
    hidden_dim: int = setting(256, "width of the two residual MLPs", low=4, high=4096, step=8, label="Hidden size")
    dropout: float = setting(0.2, "dropout on the seed embeddings while training", low=0.0, high=0.9, step=0.05)
    members: int = setting(3, "networks trained side by side from different random starts, each on its own "
                           "minibatches; their averaged log-probabilities score tracks (1: a single network, the "
                           "notebook's model)", low=1, high=8, label="Networks")
    tied: bool = setting(True, "score tracks by a dot product with the input embeddings (tied) or by a separate "
                         "Linear head (untied, as the notebook had)", label="Tied head")
    min_track_count: int = setting(2, "tracks in fewer playlists than this are not scored by the network (the "
                                   "fallbacks cover them)", low=1, high=1_000_000)
    max_vocab: int = setting(300_000, "the network scores at most this many of the most frequent tracks (0: no cap)",
                             low=0, high=10_000_000, label="Max vocabulary")
    max_seeds: int = setting(100, "at most this many seeds per training example (the challenge gives 1 to 100)",
                             low=1, high=1000)
    min_title_count: int = setting(0, "title words in at least this many playlists feed the network (0: titles off, "
                                   "the notebook's inputs; on held-out MPD-sample playlists titles lowered "
                                   "R-precision, 0.102 against 0.108)", low=0, high=1_000_000)


@dataclass(frozen=True)
class TrainSettings(Settings):
    owner = "neural"
    learning_rate: float = setting(7e-3, "peak AdamW learning rate (linear warm-up, cosine decay)", low=1e-6,
                                   high=1.0, step=1e-4, log=True)
    epochs: int = setting(30, "passes over the training playlists; the best epoch on validation is kept", low=1,
                          high=1000)
    batch_size: int = setting(64, "playlists per step", low=1, high=8192)
    targets_per_playlist: int = setting(50, "withheld tracks scored per playlist and step (the notebook's "
                                        "'training sets')", low=1, high=1000)
    weight_decay: float = setting(0.0, "AdamW weight decay", low=0.0, high=1.0)
    title_dropout: float = setting(0.2, "share of training examples shown without their title, so the model also "
                                   "works without one", low=0.0, high=1.0, step=0.05)
    val_share: float = setting(0.05, "share of playlists held out for the per-epoch validation R-precision "
                               "(0: none, the last epoch is kept)", low=0.0, high=0.5, step=0.01,
                               label="Validation share")
    seed: int = setting(0, "seeds the weights, the batches and the validation split", low=0, high=2**31 - 1)
    device: str = setting("auto", "auto picks CUDA, then Apple MPS, else CPU", choices=DEVICES)


@dataclass(frozen=True)
class DataSettings(Settings):
    owner = "data"
    max_files: int = setting(0, "train on the playlists of the first N loaded slice files (0: all); the "
                             "notebook's 'number of files'", low=0, high=1_000_000, label="Files to load")


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    owner = "evaluate"
    test_share: float = setting(0.1, "share of playlists held out for scoring when no test files are given",
                                low=0.01, high=0.9, step=0.01, label="Held-out share")
    max_cases: int = setting(0, "score at most this many challenge cases (0: one per held-out playlist)", low=0,
                             high=10_000_000)
    seed: int = setting(0, "seeds the split, the challenge cases and every model's training", low=0,
                        high=2**31 - 1)
