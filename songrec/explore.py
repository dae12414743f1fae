"""Tables behind the app's views: dataset summaries, playlist and track search, recommendation lists
with hits marked, and model comparisons. Plain pandas in, pandas out: no Streamlit here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from songrec.corpus import Corpus
from songrec.metrics import Evaluation, evaluate_model, ndcg, r_precision
from songrec.models.base import Recommender
from songrec.protocol import CATEGORY_NAMES, make_cases

FOLLOWER_BUCKETS = ((0, 1, "1"), (1, 2, "2"), (2, 5, "3–5"), (5, 10, "6–10"), (10, 100, "11–100"),
                    (100, 1_000, "101–1k"), (1_000, 10_000, "1k–10k"), (10_000, np.inf, "10k+"))
"""(above, up to and including, label) follower buckets, on a log-like scale."""


def length_histogram(corpus: Corpus, bin_width: int = 5) -> pd.DataFrame:
    """Playlists per length bin (start, end, playlists): pre-binned so 1M playlists stay 50 rows."""
    lengths = corpus.lengths()
    if len(lengths) == 0:
        return pd.DataFrame({"start": [], "end": [], "playlists": []})
    edges = np.arange(0, int(lengths.max()) + bin_width + 1, bin_width)
    counts, edges = np.histogram(lengths, bins=edges)
    frame = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "playlists": counts})
    return frame[frame["playlists"] > 0].reset_index(drop=True)


def follower_histogram(corpus: Corpus) -> pd.DataFrame:
    """Playlists per follower bucket (1, 2, 3–5, ... 10k+), in bucket order; a "0" bucket only if any."""
    followers = corpus.playlists["num_followers"].to_numpy()
    rows = [("0", int((followers <= 0).sum()), 0)] if (followers <= 0).any() else []
    for order, (low, high, label) in enumerate(FOLLOWER_BUCKETS, start=1):
        rows.append((label, int(((followers > low) & (followers <= high)).sum()), order))
    return pd.DataFrame(rows, columns=["followers", "playlists", "order"])


def search_playlists(corpus: Corpus, query: str = "", limit: int | None = 200) -> pd.DataFrame:
    """Playlists whose name contains `query` (case-insensitive): row, pid, name, tracks, followers, file."""
    names = corpus.playlists["name"].fillna("").astype(str)
    mask = names.str.contains(query.strip(), case=False, regex=False) if query.strip() else np.ones(len(names), bool)
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    if limit is not None:
        rows = rows[:limit]
    table = corpus.playlists.iloc[rows]
    return pd.DataFrame(
        {
            "row": rows,
            "pid": table["pid"].to_numpy(),
            "name": table["name"].to_numpy(),
            "tracks": corpus.lengths()[rows],
            "followers": table["num_followers"].to_numpy(),
            "file": [str(f).rsplit("/", 1)[-1] for f in table["file"].to_numpy()],
        }
    )


def playlist_label(corpus: Corpus, row: int) -> str:
    playlist = corpus.playlists.iloc[row]
    return f"{playlist['name']} · pid {playlist['pid']} · {corpus.lengths()[row]} tracks"


def tracks_table(corpus: Corpus, ids: Sequence[int] | np.ndarray) -> pd.DataFrame:
    """Tracks by id, in the given order: position, track, artist, album, playlists (count), uri."""
    ids = np.asarray(ids, dtype=np.int64)
    tracks = corpus.tracks.iloc[ids]
    return pd.DataFrame(
        {
            "#": np.arange(1, len(ids) + 1),
            "track": tracks["name"].to_numpy(),
            "artist": tracks["artist"].to_numpy(),
            "album": tracks["album"].to_numpy(),
            "playlists": corpus.track_counts[ids],
            "uri": tracks["uri"].to_numpy(),
        }
    )


def search_tracks(corpus: Corpus, query: str, limit: int = 50) -> pd.DataFrame:
    """Tracks whose name or artist contains `query`, most frequent first: id, track, artist, playlists."""
    query = query.strip()
    if not query:
        return pd.DataFrame({"id": [], "track": [], "artist": [], "playlists": []})
    names = corpus.tracks["name"].fillna("").astype(str)
    artists = corpus.tracks["artist"].fillna("").astype(str)
    mask = names.str.contains(query, case=False, regex=False) | artists.str.contains(query, case=False, regex=False)
    ids = np.flatnonzero(np.asarray(mask, dtype=bool))
    counts = corpus.track_counts[ids]
    ids = ids[np.lexsort((ids, -counts))][:limit]
    return pd.DataFrame(
        {
            "id": ids,
            "track": names.to_numpy()[ids],
            "artist": artists.to_numpy()[ids],
            "playlists": corpus.track_counts[ids],
        }
    )


def track_label(corpus: Corpus, track_id: int) -> str:
    return f"{corpus.tracks['name'].iat[track_id]} — {corpus.tracks['artist'].iat[track_id]}"


def holdout(corpus: Corpus, row: int, n_seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, held-out tracks) of a dataset playlist: its first n_seeds tracks and the distinct rest."""
    tracks = corpus.playlist_tracks(row).astype(np.int64)
    seeds = tracks[:n_seeds]
    rest = tracks[n_seeds:]
    _, first = np.unique(rest, return_index=True)
    rest = rest[np.sort(first)]
    return seeds, rest[~np.isin(rest, seeds)]


def recommendation_table(
    model,
    corpus: Corpus,
    seeds: Sequence[int] | np.ndarray,
    title: str | None = None,
    n: int = 20,
    truth: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """A model's top n for some seeds and/or a title: rank, track, artist, score, source, (hit), uri.

    `source` says whether the model scored the track or it is a fill-in (title model, popularity:
    NaN score). With `truth`, `hit` marks recommendations that are in the held-out tracks.
    """
    ids, scores = model.recommend(np.asarray(seeds, dtype=np.int64), title or None, n)
    tracks = corpus.tracks.iloc[ids]
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(ids) + 1),
            "track": tracks["name"].to_numpy(),
            "artist": tracks["artist"].to_numpy(),
            "score": scores.astype(np.float64),
            "source": np.where(np.isnan(scores), "fill-in", "model"),
            "uri": tracks["uri"].to_numpy(),
            "id": ids,
        }
    )
    if truth is not None:
        table.insert(1, "hit", np.isin(ids, np.asarray(truth, dtype=np.int64)))
    return table


def holdout_scores(ids: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Hits, R-precision (tracks only) and NDCG of one recommendation list against held-out tracks."""
    ids = np.asarray(ids, dtype=np.int64)
    return {
        "hits": int(np.isin(ids, truth).sum()),
        "r_precision": r_precision(ids, truth) if len(truth) else float("nan"),
        "ndcg": ndcg(ids, truth) if len(truth) else float("nan"),
    }


METRICS = ("r_precision", "ndcg", "clicks", "r_precision_tracks", "hit_at_15")
METRIC_LABELS = {
    "r_precision": "R-precision",
    "r_precision_tracks": "R-precision (tracks only)",
    "ndcg": "NDCG",
    "clicks": "Clicks (lower is better)",
    "hit_at_15": "Hit@15",
}


@dataclass
class FittedModels:
    models: dict[str, Recommender]
    seconds: dict[str, float]
    errors: dict[str, str]
    """Model kind -> why it could not be fitted (one failure must not hide the others' results)."""


def fit_models(
    kinds: Sequence[str],
    corpus: Corpus,
    params: Mapping[str, Mapping] | None = None,
    progress: Callable[[str, object], None] | None = None,
) -> FittedModels:
    """Fit each model kind on the corpus with its settings (`params[kind]`, keyword arguments of the
    model); `progress(kind, FitProgress | TrainProgress)` as they go."""
    from songrec.models import make_model

    fitted = FittedModels({}, {}, {})
    for kind in kinds:
        started = time.perf_counter()
        model = make_model(kind, **dict((params or {}).get(kind, {})))
        callback = (lambda event, kind=kind: progress(kind, event)) if progress is not None else None
        try:
            fitted.models[kind] = model.fit(corpus, callback=callback)
        except (ValueError, RuntimeError, MemoryError) as exc:
            fitted.errors[kind] = f"{type(exc).__name__}: {exc}"
            continue
        fitted.seconds[kind] = time.perf_counter() - started
    return fitted


def compare_models(
    models: Mapping[str, object],
    corpus: Corpus,
    cases,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Evaluation]:
    """Evaluate each named model on the same challenge cases."""
    results = {}
    for name, model in models.items():
        callback = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        results[name] = evaluate_model(model, cases, corpus.track_artist, progress=callback)
    return results


def evaluation_tables(results: Mapping[str, Evaluation]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(overall: one row per model, per category: long form model x category x metric values)."""
    overall = pd.DataFrame(
        [{"model": name, **evaluation.overall.as_dict()} for name, evaluation in results.items()],
        columns=["model", *METRICS, "cases"],
    )
    rows = []
    for name, evaluation in results.items():
        for category in CATEGORY_NAMES:
            scores = evaluation.per_category.get(category)
            if scores is not None:
                rows.append({"model": name, "category": category, **scores.as_dict()})
    per_category = pd.DataFrame(rows, columns=["model", "category", *METRICS, "cases"])
    return overall, per_category


def holdout_cases(corpus: Corpus, test_share: float, seed: int = 0, max_cases: int | None = None):
    """(train corpus, held-out corpus, challenge cases from the held-out playlists)."""
    train, test = corpus.split(test_share, seed)
    return train, test, make_cases(test, seed=seed, max_cases=max_cases)
