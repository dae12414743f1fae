"""Tables behind the app's views: dataset summaries, playlist and track search, recommendation lists
with hits marked, and model comparisons. Plain pandas in, pandas out: no Streamlit here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from songrec.corpus import Corpus
from songrec.errors import UserError
from songrec.metrics import Evaluation, evaluate_model, ndcg, r_precision
from songrec.models.base import Recommender
from songrec.protocol import CATEGORY_NAMES, make_cases

FOLLOWER_BUCKETS = (
    (0, 1, "1"),
    (1, 2, "2"),
    (2, 5, "3–5"),
    (5, 10, "6–10"),
    (10, 100, "11–100"),
    (100, 1_000, "101–1k"),
    (1_000, 10_000, "1k–10k"),
    (10_000, np.inf, "10k+"),
)
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
    reasons: bool = True,
) -> pd.DataFrame:
    """A model's top n for some seeds and/or a title: rank, track, artist, score, reason, source, (hit), uri.

    `source` says whether the model scored the track or it is a fill-in (title model, popularity:
    NaN score). `reason` is the model's `explain` (counted in `corpus`). With `truth`, `hit` marks
    recommendations that are in the held-out tracks.
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    ids, scores = model.recommend(seeds, title or None, n)
    tracks = corpus.tracks.iloc[ids]
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(ids) + 1),
            "track": tracks["name"].to_numpy(),
            "artist": tracks["artist"].to_numpy(),
            "score": scores.astype(np.float64),
            "reason": explain(model, corpus, seeds, ids) if reasons else [""] * len(ids),
            "source": np.where(np.isnan(scores), "fill-in", "model"),
            "uri": tracks["uri"].to_numpy(),
            "id": ids,
        }
    )
    if truth is not None:
        table.insert(1, "hit", np.isin(ids, np.asarray(truth, dtype=np.int64)))
    return table


def explain(model, corpus: Corpus, seeds: Sequence[int] | np.ndarray, ids: Sequence[int] | np.ndarray) -> list[str]:
    """Why each of `ids` was recommended for `seeds`: the model's own `explain`, counted in `corpus`."""
    return model.explain(seeds, ids, corpus)


def holdout_scores(ids: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Hits, R-precision (tracks only) and NDCG of one recommendation list against held-out tracks."""
    ids = np.asarray(ids, dtype=np.int64)
    return {
        "hits": int(np.isin(ids, truth).sum()),
        "r_precision": r_precision(ids, truth) if len(truth) else float("nan"),
        "ndcg": ndcg(ids, truth) if len(truth) else float("nan"),
    }


METRICS = ("r_precision", "ndcg", "clicks", "r_precision_tracks", "hit_at_15", "coverage")
METRIC_LABELS = {
    "r_precision": "R-precision",
    "r_precision_tracks": "R-precision (tracks only)",
    "ndcg": "NDCG",
    "clicks": "Clicks (lower is better)",
    "hit_at_15": "Hit@15",
    "coverage": "Coverage (top 15s)",
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


def feature_importances(models: Mapping[str, object]) -> dict[str, pd.DataFrame]:
    """(feature, gain) tables of the models that learn a ranker over features (the hybrid), by name."""
    tables = {}
    for name, model in models.items():
        importances = getattr(model, "feature_importances", None)
        if callable(importances):
            tables[name] = importances()
    return tables


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


# --- two models, one playlist ---------------------------------------------------------------------------------


@dataclass
class SideBySide:
    """Two models' lists for the same playlist, each with an `in both` column."""

    left: pd.DataFrame
    right: pd.DataFrame
    shared: int
    """Tracks in both lists."""
    hits: tuple[int, int] | None
    """Held-out tracks found by each list (None without held-out tracks)."""


def side_by_side(
    model_a,
    model_b,
    corpus: Corpus,
    seeds: Sequence[int] | np.ndarray,
    title: str | None = None,
    n: int = 15,
    truth: Sequence[int] | np.ndarray | None = None,
) -> SideBySide:
    """Both models' recommendation tables for the same seeds and title, the overlap marked and, with
    `truth`, each list's held-out hits counted."""
    left = recommendation_table(model_a, corpus, seeds, title, n, truth)
    right = recommendation_table(model_b, corpus, seeds, title, n, truth)
    shared = np.intersect1d(left["id"].to_numpy(), right["id"].to_numpy())
    left.insert(left.columns.get_loc("score"), "in both", left["id"].isin(shared).to_numpy())
    right.insert(right.columns.get_loc("score"), "in both", right["id"].isin(shared).to_numpy())
    hits = (int(left["hit"].sum()), int(right["hit"].sum())) if truth is not None else None
    return SideBySide(left, right, len(shared), hits)


# --- exports --------------------------------------------------------------------------------------------------


def file_stem(name: str, most: int = 40) -> str:
    """A playlist or model name as a safe file-name part: lower-case letters, digits and dashes."""
    stem = "-".join("".join(ch if ch.isascii() and ch.isalnum() else " " for ch in name.lower()).split())
    return stem[:most].strip("-") or "playlist"


EXPORT_COLUMNS = ("rank", "hit", "track", "artist", "score", "reason", "source", "uri")


def table_csv(table: pd.DataFrame) -> bytes:
    """A recommendation table as UTF-8 CSV (the columns a reader needs; internal ids left out)."""
    return table[[c for c in EXPORT_COLUMNS if c in table]].to_csv(index=False).encode("utf-8")


def playlist_slice(
    corpus: Corpus,
    seeds: Sequence[int] | np.ndarray,
    table: pd.DataFrame,
    title: str | None = None,
    pid: int = 0,
    model_name: str = "songrec",
) -> bytes:
    """The playlist continued by its recommendations, as a one-playlist MPD slice (readable by any MPD
    tool and by songrec itself): the seeds first, then the recommended tracks in rank order."""
    from songrec.mpd import Playlist, SliceInfo, Track, encode_slice

    seeds = np.asarray(seeds, dtype=np.int64)
    ids = np.concatenate([seeds, table["id"].to_numpy(np.int64)])
    rows = corpus.tracks.iloc[ids]
    tracks = [
        Track(pos=pos, artist_name=str(artist), track_uri=str(uri), track_name=str(name))
        for pos, (artist, uri, name) in enumerate(zip(rows["artist"], rows["uri"], rows["name"], strict=True))
    ]
    playlist = Playlist(
        name=title or "songrec playlist",
        pid=int(pid),
        num_tracks=len(tracks),
        num_followers=0,
        tracks=tracks,
        num_artists=int(rows["artist"].nunique()),
        description=f"{len(seeds)} tracks, then {len(table)} recommended by {model_name}",
    )
    info = SliceInfo(generated_on=time.strftime("%Y-%m-%d %H:%M:%S"), slice=f"{pid}-{pid}", version="songrec")
    return encode_slice([playlist], info)


# --- the notebook, as written ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookCause:
    """One reason the notebook recommended the same songs for every playlist, and the settings that remove it."""

    key: str
    title: str
    why: str
    fix: Mapping[str, object]


NOTEBOOK_CAUSES: tuple[NotebookCause, ...] = (
    NotebookCause(
        "embeddings",
        "Embeddings outside the step",
        "The input embeddings were looked up once, before the loop, so every step trained on the same stale "
        "vectors and nothing the embeddings learned ever reached the network.",
        {"embeddings_in_step": True},
    ),
    NotebookCause(
        "summed_step",
        "One summed step at lr 1e-5",
        "The loss of every playlist was summed into one SGD step at lr 1e-5 per training set and epoch: one "
        "step per pass over the data, of a size set by how many playlists were summed. Minibatches on their "
        "mean loss (Adam, lr 3e-3) take a step per 64 playlists instead.",
        {"minibatches": True, "optimizer": "adam", "learning_rate": 3e-3},
    ),
    NotebookCause(
        "two_steps",
        "Two steps",
        "Two epochs of one training set are two optimiser steps in all; ten epochs over all ten training sets "
        "give the network fifty times as many.",
        {"epochs": 10, "training_sets": 10},
    ),
    NotebookCause(
        "narrow_head",
        "Untied narrow head",
        "The untied 50 -> n head learns a separate vector per track from its few appearances as a target; "
        "tying it to the input embeddings lets every appearance as a seed train it too.",
        {"tied_head": True},
    ),
)
FIXED_MODEL = {"members": 1, "embedding_dim": 50, "hidden_dim": 100, "epochs": 10}
"""The fixed model beside the notebook: songrec's neural model (the notebook's architecture, trained
correctly) at the notebook's widths, one network, 10 epochs (seconds on the demo data)."""
AS_WRITTEN, WITH_FIXES, FIXED = "notebook, as written", "notebook with fixes", "fixed model (neural)"


def notebook_cause(key: str) -> NotebookCause:
    for cause in NOTEBOOK_CAUSES:
        if cause.key == key:
            return cause
    raise ValueError(f"unknown notebook cause {key!r}; known: {', '.join(c.key for c in NOTEBOOK_CAUSES)}")


def notebook_params(fixes: Sequence[str] = ()) -> dict[str, object]:
    """The notebook model's settings with the chosen causes fixed (none: exactly as written)."""
    params: dict[str, object] = {}
    for key in fixes:
        params.update(notebook_cause(key).fix)
    return params


def genre_pair(corpus: Corpus, n_seeds: int = 20) -> tuple[int, int]:
    """Rows of a country and a Christmas playlist (named so) with more than `n_seeds` tracks, the longest of each."""
    from songrec.genres import playlist_genres

    labels = playlist_genres(corpus)
    lengths = corpus.lengths()
    rows = []
    for genre in ("country", "christmas"):
        found = np.flatnonzero((labels == genre) & (lengths > n_seeds))
        if not len(found):
            raise UserError(f"no {genre} playlist of more than {n_seeds} tracks in these playlists")
        rows.append(int(found[np.argmax(lengths[found])]))
    return rows[0], rows[1]


def top_confidences(model, seeds: Sequence[int] | np.ndarray, k: int = 15) -> np.ndarray:
    """The softmax probabilities of a model's top k for some seeds, over every track it scores: for
    models whose scores are logits (notebook, neural). A collapsed model is flat: all near 1 / tracks."""
    ids, scores = model.recommend(np.asarray(seeds, dtype=np.int64), None, model.n_tracks)
    scores = scores[np.isfinite(scores)].astype(np.float64)
    if not len(scores):
        return np.zeros(0)
    probabilities = np.exp(scores - scores.max())
    return (probabilities / probabilities.sum())[:k]


@dataclass
class CollapseReport:
    """The notebook beside the fix, measured on the same held-out playlists."""

    summary: pd.DataFrame
    """Per model: coverage, r_precision, ndcg, overlap (of the two top 15s), top and 15th confidence,
    spread (their difference), uniform (1 / tracks scored), fit_seconds."""
    lists: dict[str, pd.DataFrame]
    """Per model: rank, the country playlist's top 15 (track, artist), the Christmas one's, in both."""
    playlists: tuple[str, str]
    """Names of the country and the Christmas playlist compared."""
    confidences: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["model", "playlist", "rank", "confidence"])
    )
    """Per model and playlist (country, christmas), the softmax confidence of each of its top n."""


def collapse_report(
    models: Mapping[str, Recommender],
    corpus: Corpus,
    cases,
    seconds: Mapping[str, float] | None = None,
    n_seeds: int = 20,
    n: int = 15,
) -> CollapseReport:
    """Coverage and R-precision on `cases`, and the top n of a country and a Christmas playlist of
    `corpus` (their first `n_seeds` tracks, as the notebook's input; both seed lists excluded from both,
    so a model that ignores its input gives the very same list twice)."""
    country, christmas = genre_pair(corpus, n_seeds)
    seeds = [corpus.playlist_tracks(r)[:n_seeds].astype(np.int64) for r in (country, christmas)]
    both = np.concatenate(seeds)
    rows, lists, spread = [], {}, []
    for name, model in models.items():
        evaluation = evaluate_model(model, cases, corpus.track_artist)
        tops = [model.recommend(s, None, n, exclude=both)[0] for s in seeds]
        shared = np.intersect1d(tops[0], tops[1])
        confidences = [top_confidences(model, s, n) for s in seeds]
        for genre, values in zip(("country", "christmas"), confidences, strict=True):
            spread += [(name, genre, rank, float(v)) for rank, v in enumerate(values, start=1)]
        top = float(np.mean([c[0] for c in confidences if len(c)])) if any(len(c) for c in confidences) else np.nan
        last = float(np.mean([c[-1] for c in confidences if len(c)])) if any(len(c) for c in confidences) else np.nan
        rows.append(
            {
                "model": name,
                "coverage": evaluation.overall.coverage,
                "r_precision": evaluation.overall.r_precision,
                "ndcg": evaluation.overall.ndcg,
                "overlap": len(shared),
                "top_confidence": top,
                "last_confidence": last,
                "spread": top - last,
                "uniform": 1.0 / max(1, int(np.isfinite(model.recommend(seeds[0], None, model.n_tracks)[1]).sum())),
                "fit_seconds": (seconds or {}).get(name, np.nan),
            }
        )
        length = min(len(tops[0]), len(tops[1]))
        tracks = [corpus.tracks.iloc[t[:length]] for t in tops]
        lists[name] = pd.DataFrame(
            {
                "rank": np.arange(1, length + 1),
                "country track": tracks[0]["name"].to_numpy(),
                "country artist": tracks[0]["artist"].to_numpy(),
                "christmas track": tracks[1]["name"].to_numpy(),
                "christmas artist": tracks[1]["artist"].to_numpy(),
                "in both": np.isin(tops[0][:length], shared),
            }
        )
    names = tuple(str(corpus.playlists["name"].iat[r]) for r in (country, christmas))
    confidences = pd.DataFrame(spread, columns=["model", "playlist", "rank", "confidence"])
    return CollapseReport(pd.DataFrame(rows), lists, names, confidences)


def replay_notebook(
    train: Corpus,
    test: Corpus,
    fixes: Sequence[str] = (),
    cases=None,
    fixed_params: Mapping[str, object] | None = None,
    progress: Callable[[str, object], None] | None = None,
) -> CollapseReport:
    """Train the notebook as written, the notebook with `fixes` (when any) and the fixed model on
    `train`; measure them on `test` (challenge cases from it unless `cases` are given)."""
    from songrec.models import make_model

    kinds = {AS_WRITTEN: ("notebook", {})}
    if fixes:
        kinds[WITH_FIXES] = ("notebook", notebook_params(fixes))
    kinds[FIXED] = ("neural", dict(FIXED_MODEL if fixed_params is None else fixed_params))
    models, seconds = {}, {}
    for label, (kind, params) in kinds.items():
        started = time.perf_counter()
        callback = (lambda event, label=label: progress(label, event)) if progress is not None else None
        models[label] = make_model(kind, **params).fit(train, callback=callback)
        seconds[label] = time.perf_counter() - started
    return collapse_report(models, test, make_cases(test, seed=0) if cases is None else cases, seconds)
