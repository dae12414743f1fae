"""RecSys Challenge 2018 metrics: R-precision (with artist credit), NDCG, recommended-songs clicks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from songrec.protocol import CATEGORY_NAMES, Case

if TYPE_CHECKING:
    from songrec.models.base import Recommender

ARTIST_CREDIT = 0.25
MAX_CLICKS = 51
COVERAGE_AT = 15
"""Coverage counts the distinct tracks in the top 15 of every list (the lists a listener sees first)."""


def r_precision(recommended: np.ndarray, truth: np.ndarray) -> float:
    """Share of the ground truth found among the first |G| recommendations (tracks only)."""
    if len(truth) == 0:
        return 0.0
    top = recommended[: len(truth)]
    return float(np.isin(top, truth).sum()) / len(truth)


def r_precision_with_artists(
    recommended: np.ndarray,
    truth: np.ndarray,
    recommended_artists: np.ndarray,
    truth_artists: np.ndarray,
) -> float:
    """The challenge's R-precision: exact track hits, plus 0.25 for each distinct ground-truth
    artist matched by a top-|G| recommendation that did not match as a track, over |G|."""
    if len(truth) == 0:
        return 0.0
    size = len(truth)
    top = recommended[:size]
    hit = np.isin(top, truth)
    track_artists_hit = set(np.asarray(recommended_artists[:size])[hit].tolist())
    missed_artists = set(np.asarray(recommended_artists[:size])[~hit].tolist())
    credited = (missed_artists & set(np.asarray(truth_artists).tolist())) - track_artists_hit
    return (float(hit.sum()) + ARTIST_CREDIT * len(credited)) / size


def _discounts(size: int) -> np.ndarray:
    """The challenge's DCG weights: rel_1 + sum_{i>=2} rel_i / log2(i) (1-based i)."""
    positions = np.arange(1, size + 1, dtype=np.float64)
    weights = 1.0 / np.log2(np.maximum(positions, 2.0))
    return weights


def ndcg(recommended: np.ndarray, truth: np.ndarray) -> float:
    """DCG of the hits over the ideal DCG of min(|G|, len(recommended)) hits at the top."""
    if len(truth) == 0:
        return 0.0
    hit = np.isin(recommended, truth)
    discounts = _discounts(len(recommended))
    dcg = float(discounts[hit].sum())
    ideal = float(discounts[: min(len(truth), len(recommended))].sum())
    return dcg / ideal if ideal > 0 else 0.0


def clicks(recommended: np.ndarray, truth: np.ndarray) -> int:
    """Pages of ten a listener refreshes before a relevant track: floor(first hit / 10), 51 if none."""
    hits = np.flatnonzero(np.isin(recommended[:500], truth))
    return int(hits[0] // 10) if len(hits) else MAX_CLICKS


def hit_at(recommended: np.ndarray, truth: np.ndarray, k: int = 15) -> float:
    """1 when any of the first k recommendations is relevant."""
    return float(np.isin(recommended[:k], truth).any())


def coverage(lists: Sequence[np.ndarray], k: int = COVERAGE_AT) -> float:
    """Distinct tracks in all top-k lists over k x lists: 1 when no two lists share a track, 1 / lists
    when every playlist gets the same k (the notebook's collapse), NaN without lists."""
    if not lists:
        return math.nan
    tops = [np.asarray(ids, dtype=np.int64)[:k] for ids in lists]
    return len(np.unique(np.concatenate(tops))) / (k * len(tops))


@dataclass
class Scores:
    r_precision: float
    r_precision_tracks: float
    ndcg: float
    clicks: float
    hit_at_15: float
    cases: int
    coverage: float = math.nan
    """Distinct tracks in the cases' top-15 lists over 15 x cases (see `coverage`)."""

    def as_dict(self) -> dict:
        return asdict(self)


def score_case(case: Case, recommended: np.ndarray, track_artist: np.ndarray) -> dict[str, float]:
    recommended = np.asarray(recommended, dtype=np.int64)
    return {
        "r_precision": r_precision_with_artists(recommended, case.truth, track_artist[recommended], case.truth_artists),
        "r_precision_tracks": r_precision(recommended, case.truth),
        "ndcg": ndcg(recommended, case.truth),
        "clicks": clicks(recommended, case.truth),
        "hit_at_15": hit_at(recommended, case.truth, 15),
    }


def _average(rows: Sequence[dict[str, float]], lists: Sequence[np.ndarray]) -> Scores:
    if not rows:
        return Scores(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    keys = ("r_precision", "r_precision_tracks", "ndcg", "clicks", "hit_at_15")
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return Scores(**means, cases=len(rows), coverage=coverage(lists))


@dataclass
class Evaluation:
    overall: Scores
    per_category: dict[str, Scores]

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "per_category": {name: s.as_dict() for name, s in self.per_category.items()},
        }


def evaluate(
    recommend: Callable[[Case], np.ndarray],
    cases: Sequence[Case],
    track_artist: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score `recommend(case)` (up to 500 track ids) on every case; average overall and per category,
    with the coverage of the top-15 lists of each."""
    rows: list[tuple[str, dict[str, float], np.ndarray]] = []
    for done, case in enumerate(cases, start=1):
        recommended = np.asarray(recommend(case), dtype=np.int64)
        rows.append((case.category, score_case(case, recommended, track_artist), recommended[:COVERAGE_AT]))
        if progress is not None:
            progress(done, len(cases))
    per_category = {
        name: _average([r for c, r, _ in rows if c == name], [top for c, _, top in rows if c == name])
        for name in CATEGORY_NAMES
        if any(c == name for c, _, _ in rows)
    }
    return Evaluation(_average([r for _, r, _ in rows], [top for _, _, top in rows]), per_category)


def evaluate_model(
    model: Recommender,
    cases: Sequence[Case],
    track_artist: np.ndarray,
    n: int = 500,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate any Recommender on challenge cases, a batch at a time."""
    recommended: dict[int, np.ndarray] = {}
    for start in range(0, len(cases), batch_size):
        batch = cases[start : start + batch_size]
        results = model.recommend_batch([c.seeds for c in batch], [c.title for c in batch], n)
        for offset, (ids, _) in enumerate(results):
            recommended[start + offset] = ids
        if progress is not None:
            progress(min(start + batch_size, len(cases)), len(cases))
    position = {id(case): i for i, case in enumerate(cases)}
    return evaluate(lambda case: recommended[position[id(case)]], cases, track_artist)
