"""The neural model's settings, split by concern, as typed Settings (no torch here, so the CLI and the
app build their options and forms without loading it).

- NetworkSettings: the architecture and its vocabulary, what a checkpoint stores (as nanoGPT's GPTConfig);
- TrainSettings: how one run trains it (optimiser, epochs, batches, seed, device, validation share);
- DataSettings: which of the loaded slice files a run reads.

The defaults were chosen on random held-out 10% splits of the MPD sample (see README, The neural model):
every track of the training playlists in the vocabulary (tracks seen once too), three networks, each
started from its own short ALS fit and taught by it (a second loss towards ALS's answer for the same
seeds, songrec.distillation), a sampled softmax over 2,048 frequency-drawn
negatives plus the batch's targets, batches of 64 at lr 5e-3, 10 epochs on every training playlist
(no validation share, so the last epoch is kept; early stopping with patience 3 when one is set).
"""

from __future__ import annotations

from dataclasses import dataclass

from songrec.settings import Settings, setting

DEVICES = ("auto", "cpu", "cuda", "mps")
SERVING_PRECISIONS = ("float32", "bfloat16", "int8")
INITS = ("random", "als")
FOLD_INS = ("shared", "exact")


@dataclass(frozen=True)
class NetworkSettings(Settings):
    owner = "neural"
    embedding_dim: int = setting(128, "size of each track embedding", low=4, high=1024, step=8, label="Embedding size")
    hidden_dim: int = setting(256, "width of the two residual MLPs", low=4, high=4096, step=8, label="Hidden size")
    dropout: float = setting(0.2, "dropout on the seed embeddings while training", low=0.0, high=0.9, step=0.05)
    members: int = setting(
        3,
        "networks trained side by side from different random starts, each on its own "
        "minibatches; their averaged log-probabilities score tracks (1: a single network, the "
        "notebook's model)",
        low=1,
        high=8,
        label="Networks",
    )
    tied: bool = setting(
        True,
        "score tracks by a dot product with the input embeddings (tied) or by a separate "
        "Linear head (untied, as the notebook had)",
        label="Tied head",
    )
    min_track_count: int = setting(
        1,
        "tracks in fewer playlists than this are not scored by the network (the fallbacks cover them); "
        "on the tuning splits 1 beat 2 by 0.005 R-precision: a quarter of the entries are tracks seen once",
        low=1,
        high=1_000_000,
    )
    max_vocab: int = setting(
        300_000,
        "the network scores at most this many of the most frequent tracks (0: no cap)",
        low=0,
        high=10_000_000,
        label="Max vocabulary",
    )
    max_seeds: int = setting(
        100, "at most this many seeds per training example (the challenge gives 1 to 100)", low=1, high=1000
    )
    min_title_count: int = setting(
        0,
        "title words in at least this many playlists feed the network (0: titles off, "
        "the notebook's inputs; on held-out MPD-sample playlists titles lowered "
        "R-precision, 0.102 against 0.108)",
        low=0,
        high=1_000_000,
    )
    serving: str = setting(
        "auto",
        "precision of the track table a recommendation reads: float32 (exact), bfloat16 "
        "or int8 (half or a quarter of the bytes; the best 2 x n are rescored exactly); auto: "
        "float32 up to 100,000 scored tracks, int8 above",
        choices=("auto", *SERVING_PRECISIONS),
        label="Serving precision",
    )


@dataclass(frozen=True)
class TrainSettings(Settings):
    owner = "neural"
    learning_rate: float = setting(
        5e-3, "peak AdamW learning rate (linear warm-up, cosine decay)", low=1e-6, high=1.0, step=1e-4, log=True
    )
    epochs: int = setting(
        10, "passes over the training playlists; the best epoch on validation is kept", low=1, high=1000
    )
    batch_size: int = setting(64, "playlists per step", low=1, high=8192)
    targets_per_playlist: int = setting(
        50, "withheld tracks scored per playlist and step (the notebook's 'training sets')", low=1, high=1000
    )
    weight_decay: float = setting(0.0, "AdamW weight decay", low=0.0, high=1.0)
    negatives: int = setting(
        2048,
        "sampled softmax: each step scores the batch's targets and this many tracks drawn "
        "by frequency, log-frequency corrected, instead of the whole vocabulary (0: full "
        "softmax)",
        low=0,
        high=1_000_000,
        label="Sampled negatives",
    )
    negative_power: float = setting(
        0.75,
        "negatives are drawn with probability proportional to track frequency to "
        "this power (0: uniform, 1: as often as tracks occur)",
        low=0.0,
        high=1.0,
        step=0.05,
    )
    patience: int = setting(
        3,
        "stop when validation R-precision has not improved for this many epochs (0: run every epoch)",
        low=0,
        high=1000,
    )
    bfloat16: bool = setting(
        False, "compute the forward pass in bfloat16 (autocast; weights stay float32)", label="bfloat16 autocast"
    )
    init: str = setting(
        "als",
        "start the track embeddings from random vectors or from ALS factors of the "
        "training playlists (fitted in seconds)",
        choices=INITS,
        label="Embedding start",
    )
    init_sweeps: int = setting(
        3,
        "alternating least-squares sweeps of each network's ALS start (init als); 3 and 5 scored as well as 15 "
        "on the tuning splits, 3 in a fifth of the time",
        low=1,
        high=1000,
        label="ALS start sweeps",
    )
    distill: float = setting(
        1.0,
        "weight of ALS as a teacher (with init als): a second loss, the cross-entropy from the softmax of ALS's "
        "answer for the same seeds (each network's ALS start) to the network's, over each step's candidates; "
        "0: off. On the tuning splits it lifted NDCG by 0.005 and R-precision by 0.002 (README)",
        low=0.0,
        high=100.0,
        step=0.1,
        label="ALS teacher weight",
    )
    distill_scale: float = setting(
        10.0,
        "the teacher's logits are ALS's scores scaled so that each playlist's best reads this; lower is a "
        "flatter teacher that says more about the deep list",
        low=0.1,
        high=1000.0,
        step=1.0,
        label="ALS teacher scale",
    )
    distill_fold_in: str = setting(
        "shared",
        "how the teacher answers a seed list: exact is ALS's own fold-in (a least-squares solve per playlist, "
        "with the seeds' confidence); shared leaves the seeds' confidence out of it, so one inverse serves "
        "every playlist: on the tuning splits it taught as well, for 40% of the exact teacher's cost",
        choices=FOLD_INS,
        label="ALS teacher fold-in",
    )
    title_dropout: float = setting(
        0.2,
        "share of training examples shown without their title, so the model also works without one",
        low=0.0,
        high=1.0,
        step=0.05,
    )
    val_share: float = setting(
        0.0,
        "share of playlists held out for the per-epoch validation R-precision and early stopping (0: none, "
        "every playlist is learned from and the last epoch is kept; on the tuning splits that scored 0.002 "
        "higher than holding out one playlist in twenty)",
        low=0.0,
        high=0.5,
        step=0.01,
        label="Validation share",
    )
    cpu_threads: int = setting(
        1,
        "torch threads while training on CPU (0: torch's default, one per core); a sampled step is many small "
        "operations, and on a shared 2-core machine 2 threads spent 5-10x the CPU time of one waiting on each other",
        low=0,
        high=256,
        label="CPU threads",
    )
    seed: int = setting(0, "seeds the weights, the batches and the validation split", low=0, high=2**31 - 1)
    device: str = setting("auto", "auto picks CUDA, then Apple MPS, else CPU", choices=DEVICES)


@dataclass(frozen=True)
class DataSettings(Settings):
    owner = "data"
    max_files: int = setting(
        0,
        "train on the playlists of the first N loaded slice files (0: all); the notebook's 'number of files'",
        low=0,
        high=1_000_000,
        label="Files to load",
    )


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    owner = "evaluate"
    test_share: float = setting(
        0.1,
        "share of playlists held out for scoring when no test files are given",
        low=0.01,
        high=0.9,
        step=0.01,
        label="Held-out share",
    )
    max_cases: int = setting(
        0, "score at most this many challenge cases (0: one per held-out playlist)", low=0, high=10_000_000
    )
    seed: int = setting(0, "seeds the split, the challenge cases and every model's training", low=0, high=2**31 - 1)
