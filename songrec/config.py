"""Training settings of the neural model: a plain dataclass, so the CLI and app build forms from it
without importing torch. The defaults are the best settings measured on two random held-out 10%
splits of the MPD sample (see README, Results) that train within 10 minutes on 2 CPU cores for the
whole sample: batches of 64, 30 epochs, three networks averaged."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    learning_rate: float = 7e-3
    epochs: int = 30
    max_files: int = 0
    """Slice files to read (0 = all); the notebook's "number of files"."""
    targets_per_playlist: int = 50
    """Withheld tracks scored per playlist and step; the notebook's "training sets"."""
    embedding_dim: int = 128
    hidden_dim: int = 256
    batch_size: int = 64
    dropout: float = 0.2
    weight_decay: float = 0.0
    min_track_count: int = 2
    """Tracks in fewer playlists than this are not scored by the network (fallbacks cover them)."""
    max_vocab: int = 300_000
    """The network scores at most this many of the most frequent tracks (0 = no cap)."""
    max_seeds: int = 100
    min_title_count: int = 0
    """Title words in at least this many playlists feed the network (0 = titles off: the notebook's inputs).
    Off by default: on held-out MPD-sample playlists it lowered R-precision (0.102 vs 0.108)."""
    title_dropout: float = 0.2
    """Share of training examples shown without their title, so the model also works without one."""
    members: int = 3
    """Networks trained side by side from different random starts, each on its own minibatches;
    their averaged log-probabilities score tracks (1 = a single network, the notebook's model)."""
    tied: bool = True
    """Score tracks by a dot product with the input embeddings (tied) or by a separate Linear head."""
    val_share: float = 0.05
    seed: int = 0
    device: str = "auto"
    """auto (CUDA, then Apple MPS, else CPU), cpu, cuda or mps."""
