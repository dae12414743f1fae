"""One benchmark measurement per process: `python benchmarks/tasks.py TASK JSON-ARGS`.

Each task prints one JSON line with its figures; benchmarks/run.py starts them (so every
measurement starts from a fresh process and its peak memory is its own) and writes the table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _files(source: str, count: int | None) -> list[Path]:
    from songrec.mpd import find_slice_files

    files = find_slice_files([source])
    return files[:count] if count else files


def ingest_songrec(source: str, count: int | None = None, workers: int = 1) -> dict:
    """songrec's reader: the Corpus (CSR arrays + tables) of the slices."""
    from songrec.ingest import read_corpus

    files = _files(source, count)
    size = sum(f.stat().st_size for f in files)
    started = time.perf_counter()
    corpus, report = read_corpus(files, workers=workers)
    return _throughput(started, size, len(files), entries=corpus.n_entries, errors=len(report.errors))


def ingest_notebook(source: str, count: int | None = None) -> dict:
    """The notebook's path: json.load every file, then one pandas DataFrame of all track entries."""
    import pandas as pd

    files = _files(source, count)
    size = sum(f.stat().st_size for f in files)
    started = time.perf_counter()
    rows = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        for playlist in data["playlists"]:
            pid = playlist["pid"]
            for track in playlist["tracks"]:
                track["pid"] = pid
                rows.append(track)
    frame = pd.DataFrame(rows)
    return _throughput(started, size, len(files), entries=len(frame))


def _throughput(started: float, size: int, files: int, **extra) -> dict:
    """Seconds since `started` and MB/s over `size` bytes, as one benchmark row."""
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "mb": size / 1e6, "mb_per_s": size / 1e6 / seconds, "files": files, **extra}


def build(source: str, workers: int | None = None) -> dict:
    """The corpus of a whole folder, no cache."""
    from songrec.ingest import read_corpus

    started = time.perf_counter()
    corpus, report = read_corpus([source], workers=workers)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "playlists": corpus.n_playlists,
        "tracks": corpus.n_tracks,
        "entries": corpus.n_entries,
        "artists": len(corpus.artists),
        "errors": len(report.errors),
    }


def cached(source: str, cache_dir: str) -> dict:
    """load_corpus through the cache: builds the entry when missing, then times a load that hits it."""
    from songrec.ingest import load_corpus

    started = time.perf_counter()
    load_corpus([source], cache_dir=cache_dir)
    first = time.perf_counter() - started
    calls = []
    started = time.perf_counter()
    corpus, _ = load_corpus([source], cache_dir=cache_dir, progress=lambda d, t, n: calls.append(n))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "first_seconds": first, "hit": calls == ["cache"], "playlists": corpus.n_playlists}


def _corpus(source: str, cache_dir: str | None):
    from songrec.ingest import load_corpus

    corpus, _ = load_corpus([source], cache_dir=cache_dir)
    return corpus


def train(source: str, cache_dir: str | None = None, steps: int = 30, warmup: int = 3, **overrides) -> dict:
    """Neural training throughput on CPU: playlists/s over `steps` minibatches after `warmup`."""
    import torch

    from songrec.models import make_model

    corpus = _corpus(source, cache_dir)
    model = make_model("neural", device="cpu", **overrides)
    stamps, cpu, ends = [], [], []
    started = time.perf_counter()

    def callback(progress) -> bool | None:
        if not hasattr(progress, "epoch_end"):  # fit's own closing report, after training
            return None
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())  # every thread of this process
        ends.append(progress.epoch_end)  # an epoch's last step also runs the validation: not timed
        return len(stamps) < warmup + steps

    model.fit(corpus, callback=callback)
    timed = [i for i in range(warmup, len(stamps)) if not ends[i]]
    seconds = sum(stamps[i] - stamps[i - 1] for i in timed)
    cpu_seconds = sum(cpu[i] - cpu[i - 1] for i in timed)
    batch = model.train_settings.batch_size
    return {
        "playlists_per_s": len(timed) * batch / seconds,
        "seconds_per_step": seconds / len(timed),
        "playlists_per_cpu_s": len(timed) * batch / cpu_seconds,
        "steps_timed": len(timed),
        "setup_seconds": stamps[0] - started,
        "batch_size": batch,
        "vocabulary": len(model.vocab_ids),
        "playlists": corpus.n_playlists,
        "tracks": corpus.n_tracks,
        "torch_threads": model.train_settings.cpu_threads or torch.get_num_threads(),
    }


def train_vocabulary(
    items: int = 300_000, playlists: int = 50_000, steps: int = 30, warmup: int = 3, seed: int = 0, **overrides
) -> dict:
    """Neural training throughput at a given vocabulary without a corpus: playlists of MPD-like lengths
    (songrec.synthetic's lognormal, 5-250 tracks) drawn with Zipf(0.9) popularity over `items` tracks,
    trained by songrec.training.train as the model would. A step's cost depends on the vocabulary (the
    scored tracks: 300,000 at the full MPD size), the batch and the settings, not on how many playlists
    an epoch holds, so this measures the full-size step without generating and loading 1M playlists."""
    import torch

    from songrec.distillation import Distillation, FoldInTeacher
    from songrec.training import members_of, train

    rng = np.random.default_rng(seed)
    data = _zipf_playlists(rng, playlists, items)
    net, settings = _settings(overrides)
    started = time.perf_counter()
    network = _new_network(items, net, seed)
    # as costly as the real teachers: each network's starting table stands in for its ALS start (a step's
    # cost does not depend on the values); the run trains from that start, not from ALS factors
    distillation = None
    if settings.init == "als" and settings.distill > 0:
        stand_ins = [
            FoldInTeacher(m.embedding.weight.detach().clone(), 0.1, 20.0, settings.distill_fold_in)
            for m in members_of(network)
        ]
        distillation = Distillation.from_settings(stand_ins, settings)
    stamps, cpu = [], []

    def callback(progress) -> bool:
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        return len(stamps) < warmup + steps

    train(
        network,
        data,
        settings,
        max_seeds=net.max_seeds,
        device=torch.device("cpu"),
        callback=callback,
        distillation=distillation,
    )
    seconds, cpu_seconds = stamps[-1] - stamps[warmup - 1], cpu[-1] - cpu[warmup - 1]
    timed = len(stamps) - warmup
    return {
        "playlists_per_s": timed * settings.batch_size / seconds,
        "seconds_per_step": seconds / timed,
        "playlists_per_cpu_s": timed * settings.batch_size / cpu_seconds,
        "steps_timed": timed,
        "setup_seconds": stamps[0] - started,
        "batch_size": settings.batch_size,
        "vocabulary": items,
        "playlists": playlists,
        "tracks": items,
        "torch_threads": settings.cpu_threads or torch.get_num_threads(),
    }


def latency_vocabulary(
    items: int = 300_000, queries: int = 300, train_steps: int = 300, seed: int = 0, n: int = 500, **overrides
) -> dict:
    """The neural model's answer time at a given vocabulary without a corpus: the default network
    (started, as the defaults are, from ALS factors of train_vocabulary-like playlists, then trained
    `train_steps` sampled steps on them, so the members have moved apart from their common start), one
    thread, queries of 1, 5, 10, 25 or 100 seeds, the best n by the served table (what
    NeuralRecommender.recommend spends in the network; the fallbacks and id mapping add well under a
    millisecond), and recall@n of the served answers against exact float32 scoring (_recall_at_cut)."""
    import torch

    from songrec.distillation import Distillation
    from songrec.models.network import ServedScores, pad_rows
    from songrec.training import train

    rng = np.random.default_rng(seed)
    data = _zipf_playlists(rng, 20_000, items)
    net, settings = _settings(overrides)
    network = _new_network(items, net, seed)
    distillation = None
    if settings.init == "als":
        teachers = _start_from_als(network, data, items, seed, settings)
        distillation = Distillation.from_settings(teachers, settings)
    train(
        network,
        data,
        settings,
        max_seeds=net.max_seeds,
        device=torch.device("cpu"),
        callback=lambda p: p.step < train_steps,
        distillation=distillation,
    )
    network.eval()
    started = time.perf_counter()
    precision = net.serving if net.serving != "auto" else ("float32" if items <= 100_000 else "int8")
    served = ServedScores(network, precision)
    table_seconds = time.perf_counter() - started
    exact = ServedScores(network, "float32")
    torch.set_num_threads(1)
    sizes = [1, 5, 10, 25, 100]
    times, answers = [], []
    for i in range(queries + 20):
        row = int(rng.integers(len(data)))
        seeds = torch.from_numpy(pad_rows([data.items(row)[: sizes[i % len(sizes)]]]))
        begin = time.perf_counter()
        _, ids = served.top(seeds, None, n)
        elapsed = (time.perf_counter() - begin) * 1000
        if i >= 20:
            times.append(elapsed)
            answers.append((ids[0], seeds))
    # scored after the timed queries, as in `latency`: an exact pass over every member's float32 table
    # between two queries evicts the served table from the caches, which no server does
    recalls = [] if served.exact else [_recall_at_cut(ids, exact, seeds, n) for ids, seeds in answers]
    times = np.asarray(times)
    return {
        "model": "neural",
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(times.mean()),
        "queries": len(times),
        "vocabulary": items,
        "serving": precision,
        "recall_at_500": float(np.mean(recalls)) if recalls else 1.0,
        "recall_at_500_min": float(np.min(recalls)) if recalls else 1.0,
        "table_columns": served.rank or net.embedding_dim * net.members,
        "table_seconds": table_seconds,
        "params": overrides,
    }


def _zipf_playlists(rng: np.random.Generator, playlists: int, items: int):
    """Playlists of MPD-like lengths (songrec.synthetic's lognormal, 5-250 tracks) drawn with Zipf(0.9)
    popularity over items 1..`items`, as the training loop takes them (each track once per playlist)."""
    from songrec.synthetic import _lengths
    from songrec.training import training_playlists

    lengths = _lengths(rng, playlists)
    popularity = 1.0 / np.power(rng.permutation(items) + 1.0, 0.9)
    cdf = np.cumsum(popularity) / popularity.sum()
    drawn = np.searchsorted(cdf, rng.random(int(lengths.sum()))) + 1
    ptr = np.zeros(playlists + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return training_playlists(ptr, drawn.astype(np.int64), np.arange(items + 1))


def _settings(overrides: dict):
    """The neural defaults with `overrides`, split into network and training settings (no validation share)."""
    from songrec.config import NetworkSettings, TrainSettings

    network_keys = set(NetworkSettings.__dataclass_fields__)
    net = NetworkSettings(**{k: v for k, v in overrides.items() if k in network_keys})
    settings = TrainSettings(**{k: v for k, v in overrides.items() if k not in network_keys}, val_share=0.0)
    return net, settings


def _new_network(items: int, net, seed: int):
    """The network of `net` over `items` tracks, from the random start of `seed`."""
    import torch

    from songrec.models.network import build_network

    torch.manual_seed(seed)
    return build_network(
        items,
        0,
        embedding_dim=net.embedding_dim,
        hidden_dim=net.hidden_dim,
        dropout=net.dropout,
        tied=net.tied,
        members=net.members,
    )


def _start_from_als(network, data, items: int, seed: int, settings) -> list:
    """The defaults' ALS start (neural.start_members_from_als) for playlists of items 1..n (TrainingPlaylists);
    returns the starts as teachers."""
    import scipy.sparse as sp

    from songrec.models.neural import start_members_from_als

    ones = np.ones(len(data.items_flat), dtype=np.float32)
    shape = (len(data.item_ptr) - 1, items)
    matrix = sp.csr_matrix((ones, data.items_flat - 1, data.item_ptr), shape=shape)
    return start_members_from_als(network, matrix, seed, settings.init_sweeps, settings.distill_fold_in)


def fit_time(source: str, cache_dir: str | None = None, **params) -> dict:
    """Wall and CPU seconds of one neural fit with the given settings on every playlist of `source`
    (what `songrec submit` and the Train page spend), with the epochs it ran and the one it kept."""
    import torch

    from songrec.models import make_model

    corpus = _corpus(source, cache_dir)
    model = make_model("neural", device="cpu", **params)
    epochs = []
    started, started_cpu = time.perf_counter(), time.process_time()

    def callback(progress) -> None:
        if getattr(progress, "epoch_end", False):  # the per-epoch report the app's live curves draw
            epochs.append(time.perf_counter() - started)

    model.fit(corpus, callback=callback)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - started_cpu,
        "epochs_trained": model.epochs_trained,
        "best_epoch": model.best_epoch,
        "epoch_reports": len(epochs),
        "best_val": model.best_val_metric,
        "playlists": corpus.n_playlists,
        "vocabulary": len(model.vocab_ids),
        "torch_threads": model.train_settings.cpu_threads or torch.get_num_threads(),
        "params": params,
    }


def latency(
    source: str,
    model: str,
    cache_dir: str | None = None,
    params: dict | None = None,
    queries: int = 300,
    steps: int = 5,
    seed: int = 0,
) -> dict:
    """Fit a model, then time recommend() for single playlists: p50 and p99 in milliseconds.

    Queries are playlists of the corpus with 0 (title only), 1, 5, 10, 25 or 100 seed tracks, as
    in the challenge set; 500 recommendations each. The neural model trains `steps` minibatches
    only (its answer time does not depend on how long it trained).
    """
    import torch
    from threadpoolctl import threadpool_limits

    from songrec.models import make_model

    torch.set_num_threads(1)  # one request, one core (torch and BLAS): the other serves the next request
    corpus = _corpus(source, cache_dir)
    params = dict(params or {})
    started = time.perf_counter()
    if model == "neural":
        params.setdefault("device", "cpu")
        recommender = make_model("neural", **params)
        recommender.fit(corpus, callback=lambda p: getattr(p, "step", 0) < steps)
    else:
        recommender = make_model(model, **params)
        recommender.fit(corpus)
    fit_seconds = time.perf_counter() - started
    limits = threadpool_limits(1)
    rng = np.random.default_rng(seed)
    rows = rng.choice(corpus.n_playlists, size=queries + 20, replace=corpus.n_playlists < queries + 20)
    sizes = [0, 1, 5, 10, 25, 100]
    names = corpus.playlists["name"].to_numpy()
    times, cpu_times = [], []
    for i, row in enumerate(rows):
        tracks = corpus.playlist_tracks(int(row))
        seeds = tracks[: sizes[i % len(sizes)]]
        begin, begin_cpu = time.perf_counter(), time.thread_time()
        ids, _ = recommender.recommend(seeds, str(names[row]), n=500)
        elapsed, elapsed_cpu = time.perf_counter() - begin, time.thread_time() - begin_cpu
        if i >= 20:  # the first calls warm caches up
            times.append(elapsed * 1000)
            cpu_times.append(elapsed_cpu * 1000)
        assert len(ids) > 0
    extra = {}
    if model == "neural" and recommender.serving_precision() != "float32":
        extra = _served_recall(recommender, corpus, rows, sizes)
    limits.restore_original_limits()
    times, cpu_times = np.asarray(times), np.asarray(cpu_times)
    if model == "itemknn":
        extra |= {
            "neighbour_entries": int(recommender.similarity.nnz),
            "max_neighbours": int(np.diff(recommender.similarity.indptr).max()),
        }
    return {
        "model": model,
        "fit_seconds": fit_seconds,
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(times.mean()),
        "cpu_p50_ms": float(np.percentile(cpu_times, 50)),
        "cpu_p99_ms": float(np.percentile(cpu_times, 99)),
        "queries": len(times),
        "tracks": corpus.n_tracks,
        "playlists": corpus.n_playlists,
        "params": params,
        **extra,
    }


def _recall_at_cut(served_ids, exact, seeds, n: int) -> float:
    """recall@n of served answers against exact scoring (`exact`, a float32 ServedScores): the share of them
    scoring at least the exact n-th score. Tracks tied at the cut are equally right answers; tracks never
    drawn into a generated playlist all share one score, and a set overlap counted them as misses."""
    import torch

    scores = exact.scores(seeds, None)[0]
    cut = torch.topk(scores, n).values[-1]
    return float((scores[served_ids] >= cut).float().mean())


def _served_recall(recommender, corpus, rows, sizes, n: int = 500) -> dict:
    """recall@n of the network's served (approximate) answers against exact float32 scoring of the same
    network, for the seeds the network knows (title-only playlists go to the fallbacks)."""
    import torch

    from songrec.models.network import ServedScores, pad_rows

    recommender.network.eval()  # exact scores without dropout, as recommend() reads them
    served, exact = recommender.served_scores(), ServedScores(recommender.network, "float32")
    recalls = []
    for i, row in enumerate(rows[20:], start=20):
        items = recommender.to_item[corpus.playlist_tracks(int(row))[: sizes[i % len(sizes)]]]
        if not (items > 0).any():
            continue
        seeds = torch.from_numpy(pad_rows([items[items > 0]]))
        _, ids = served.top(seeds, None, n)
        recalls.append(_recall_at_cut(ids[0], exact, seeds, n))
    return {
        "serving": recommender.serving_precision(),
        "recall_at_500": float(np.mean(recalls)),
        "recall_at_500_min": float(np.min(recalls)),
        "recall_queries": len(recalls),
    }


def tsne(points: int, dim: int = 128, seed: int = 0, method: str = "songrec") -> dict:
    """A t-SNE map of clustered vectors and its trustworthiness (cosine, 10 neighbours), by `method`:
    songrec (projection.tsne_coordinates: unit length, PCA to 50, two threads), one-thread (the
    former path: scikit-learn on the full vectors, cosine, one thread) or opentsne (openTSNE, two threads)."""
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim))
    vectors = (centres[rng.integers(0, 10, points)] + 0.5 * rng.normal(size=(points, dim))).astype(np.float32)
    started = time.perf_counter()
    if method == "songrec":
        from songrec.projection import tsne_coordinates

        coordinates = tsne_coordinates(vectors)
    elif method == "one-thread":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            tsne = TSNE(n_components=2, perplexity=30.0, metric="cosine", init="pca", random_state=seed)
            coordinates = tsne.fit_transform(vectors)
    elif method == "opentsne":
        from openTSNE import TSNE as OpenTSNE
        from sklearn.decomposition import PCA

        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        reduced = PCA(n_components=50, random_state=seed).fit_transform(unit)
        coordinates = np.asarray(OpenTSNE(perplexity=30.0, n_jobs=2, random_state=seed).fit(reduced))
    else:
        raise ValueError(f"unknown t-SNE method {method!r}")
    seconds = time.perf_counter() - started
    trust = trustworthiness(vectors, coordinates, n_neighbors=10, metric="cosine")
    return {"seconds": seconds, "points": points, "dim": dim, "method": method, "trustworthiness": float(trust)}


TASKS = {
    f.__name__: f
    for f in (
        ingest_songrec,
        ingest_notebook,
        build,
        cached,
        train,
        train_vocabulary,
        latency_vocabulary,
        fit_time,
        latency,
        tsne,
    )
}

if __name__ == "__main__":
    task, arguments = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(json.dumps(TASKS[task](**arguments)), flush=True)
