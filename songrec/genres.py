"""Genre validation: do a model's recommendations for a country playlist stay country?

Playlists get a genre from keywords in their names ("rap", "hip hop", ... -> hip-hop); a track's
genre is the most common genre among the named-genre playlists it appears in. For each playlist
of a genre, a model is seeded with the playlist's first tracks (never its title: the title holds
the keyword) and we count how many of its top 15 recommendations carry that genre label, next to
the share a random track would have (the base rate). The playlist's own vote is left out of its
recommendations' labels, so a model cannot score by handing back tracks known only from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from songrec.corpus import Corpus
from songrec.models.title import normalize_name

DEFAULT_KEYWORDS: dict[str, list[str]] = {
    "country": ["country"],
    "hip-hop": ["rap", "hip hop", "hiphop", "trap"],
    "christmas": ["christmas", "xmas", "holiday"],
}
"""The three genres the validation reports on; keywords are matched as whole words of the name."""

MORE_KEYWORDS: dict[str, list[str]] = {
    "rock": ["rock"],
    "pop": ["pop"],
    "edm": ["edm", "house", "electronic"],
    "indie": ["indie", "alternative"],
    "latin": ["latin", "latino", "reggaeton"],
    "jazz": ["jazz"],
    "classical": ["classical", "piano"],
}
"""Further genres, for colouring the embedding map."""

KeywordMap = Mapping[str, Sequence[str]]


def parse_keywords(text: str) -> list[str]:
    """'rap, hip hop ,trap' -> ['rap', 'hip hop', 'trap'] (normalized like playlist names)."""
    words = [normalize_name(part) for part in re.split(r"[,\n;]", text)]
    return [w for w in dict.fromkeys(words) if w]


def _patterns(keywords: KeywordMap) -> dict[str, re.Pattern[str] | None]:
    patterns = {}
    for genre, words in keywords.items():
        normalized = [normalize_name(w) for w in words]
        normalized = [w for w in normalized if w]
        patterns[genre] = (
            re.compile(r"(?:^| )(?:" + "|".join(re.escape(w) for w in normalized) + r")(?: |$)") if normalized else None
        )
    return patterns


def name_genre(name: str, keywords: KeywordMap = DEFAULT_KEYWORDS) -> str | None:
    """The genre a playlist name names, or None (no keyword, or keywords of two genres)."""
    normalized = normalize_name(name)
    found = [g for g, p in _patterns(keywords).items() if p is not None and p.search(normalized)]
    return found[0] if len(found) == 1 else None


def playlist_genres(corpus: Corpus, keywords: KeywordMap = DEFAULT_KEYWORDS) -> np.ndarray:
    """Per playlist row, the genre its name names (object array; None when none or ambiguous)."""
    patterns = _patterns(keywords)
    genres = np.asarray(list(patterns), dtype=object)
    names = [normalize_name(str(n)) if isinstance(n, str) else "" for n in corpus.playlists["name"].tolist()]
    hits = np.zeros((corpus.n_playlists, len(genres)), dtype=bool)
    for column, pattern in enumerate(patterns.values()):
        if pattern is not None:
            hits[:, column] = [pattern.search(name) is not None for name in names]
    labels = np.full(corpus.n_playlists, None, dtype=object)
    single = hits.sum(axis=1) == 1
    if single.any():
        labels[single] = genres[hits[single].argmax(axis=1)]
    return labels


def track_genre_counts(corpus: Corpus, playlist_labels: np.ndarray, genres: Sequence[str]) -> np.ndarray:
    """n_tracks x n_genres: in how many playlists of each genre each track appears."""
    index = {g: i for i, g in enumerate(genres)}
    rows = np.flatnonzero([label in index for label in playlist_labels])
    if len(rows) == 0:
        return np.zeros((corpus.n_tracks, len(genres)), dtype=np.int32)
    columns = np.asarray([index[playlist_labels[r]] for r in rows])
    membership = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (columns, rows)), shape=(len(genres), corpus.n_playlists)
    )
    counts = (membership @ corpus.matrix()).toarray()
    return np.ascontiguousarray(counts.T, dtype=np.int32)


def _majority(counts: np.ndarray, genres: Sequence[str]) -> np.ndarray:
    """Per row of genre counts, the genre with the most (first listed on ties); None for an all-zero row."""
    out = np.full(len(counts), None, dtype=object)
    has = counts.sum(axis=1) > 0 if counts.size else np.zeros(len(counts), bool)
    if has.any():
        out[has] = np.asarray(list(genres), dtype=object)[counts[has].argmax(axis=1)]
    return out


def track_genres(
    corpus: Corpus, keywords: KeywordMap = DEFAULT_KEYWORDS, playlist_labels: np.ndarray | None = None
) -> np.ndarray:
    """Per track id, its majority genre among the named-genre playlists it is in (None if in none).

    Ties go to the genre listed first in `keywords`.
    """
    genres = list(keywords)
    labels = playlist_genres(corpus, keywords) if playlist_labels is None else playlist_labels
    return _majority(track_genre_counts(corpus, labels, genres), genres)


@dataclass
class GenreLabels:
    """Everything genre validation derives from the playlist names, computed once per corpus and keywords."""

    genres: list[str]
    playlists: np.ndarray
    """Per playlist row: its genre or None."""
    tracks: np.ndarray
    """Per track id: its majority genre or None."""
    counts: np.ndarray
    """n_tracks x n_genres: named-genre playlists each track is in."""

    def without_playlist(self, corpus: Corpus, row: int, ids: np.ndarray) -> np.ndarray:
        """Labels of `ids` as if playlist `row` did not vote (its own tracks cannot vouch for themselves)."""
        ids = np.asarray(ids, dtype=np.int64)
        counts = self.counts[ids].astype(np.int64)
        genre = self.playlists[row]
        if genre in self.genres:
            own = np.isin(ids, corpus.playlist_tracks(row))
            counts[own, self.genres.index(genre)] -= 1
        return _majority(counts, self.genres)


def genre_labels(corpus: Corpus, keywords: KeywordMap = DEFAULT_KEYWORDS) -> GenreLabels:
    genres = list(keywords)
    playlists = playlist_genres(corpus, keywords)
    counts = track_genre_counts(corpus, playlists, genres)
    return GenreLabels(genres, playlists, _majority(counts, genres), counts)


@dataclass
class GenreMatch:
    """How often one model's top-n recommendations match a genre, per playlist and on average."""

    genre: str
    model: str
    n: int
    n_seeds: int
    per_playlist: pd.DataFrame
    """row, pid, name, seeds, matches, share, recommended (track ids), matched (bools), labels."""
    base_rate: float
    """Share of the corpus's tracks that carry the genre label: a random track's chance to match."""
    entry_rate: float
    """Share of all playlist entries whose track carries the label (a popularity-weighted chance)."""

    @property
    def mean_matches(self) -> float:
        return float(self.per_playlist["matches"].mean()) if len(self.per_playlist) else float("nan")

    @property
    def expected_by_chance(self) -> float:
        return self.n * self.base_rate

    def summary(self) -> dict:
        return {
            "genre": self.genre,
            "model": self.model,
            "playlists": len(self.per_playlist),
            "mean_matches": self.mean_matches,
            "mean_share": self.mean_matches / self.n if self.n else float("nan"),
            "base_rate": self.base_rate,
            "expected_by_chance": self.expected_by_chance,
            "entry_rate": self.entry_rate,
        }


def genre_rows(
    corpus: Corpus,
    genre: str,
    playlist_labels: np.ndarray,
    min_tracks: int = 2,
    max_playlists: int | None = None,
    seed: int = 0,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Rows of the playlists named for `genre` (a seeded random sample when max_playlists is set),
    only among the rows `within` when given (held-out playlists)."""
    rows = np.flatnonzero((playlist_labels == genre) & (corpus.lengths() >= min_tracks))
    if within is not None:
        rows = np.intersect1d(rows, np.asarray(within, dtype=np.int64))
    if max_playlists is not None and len(rows) > max_playlists:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_playlists, replace=False))
    return rows


def genre_match_counts(
    model,
    corpus: Corpus,
    genre: str,
    keywords: KeywordMap = DEFAULT_KEYWORDS,
    n: int = 15,
    n_seeds: int = 10,
    max_playlists: int | None = 300,
    seed: int = 0,
    model_name: str | None = None,
    labels: GenreLabels | None = None,
    leave_one_out: bool = True,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 128,
    within: np.ndarray | None = None,
) -> GenreMatch:
    """Seed `model` with the first `n_seeds` tracks of each `genre` playlist; count genre matches in its top n.

    With `leave_one_out` (the default) a recommended track's label is recomputed without the
    playlist's own vote: a track found only in that one playlist has no label there, so a model
    that merely returns the playlist's other tracks (which it saw in training) earns nothing for
    it. `labels` (from `genre_labels`) may be passed to reuse them across models. `within` limits the
    seeded playlists to those rows (playlists the model never saw), while the labels still come from
    every playlist of `corpus`.
    """
    if genre not in keywords:
        raise ValueError(f"no keywords for genre {genre!r}; known: {', '.join(keywords)}")
    labels = labels if labels is not None else genre_labels(corpus, keywords)
    is_genre = labels.tracks == genre
    used = corpus.track_counts > 0
    base_rate = float(is_genre[used].mean()) if used.any() else float("nan")
    entry_rate = float(is_genre[corpus.indices].mean()) if corpus.n_entries else float("nan")
    rows = genre_rows(corpus, genre, labels.playlists, 2, max_playlists, seed, within)
    records = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        seed_lists = [corpus.playlist_tracks(int(r))[:n_seeds].astype(np.int64) for r in batch]
        results = model.recommend_batch(seed_lists, [None] * len(batch), n)
        for row, seeds, (ids, _) in zip(batch, seed_lists, results, strict=True):
            ids = np.asarray(ids, dtype=np.int64)
            found = labels.without_playlist(corpus, int(row), ids) if leave_one_out else labels.tracks[ids]
            matched = found == genre
            records.append(
                {
                    "row": int(row),
                    "pid": int(corpus.playlists["pid"].iat[row]),
                    "name": str(corpus.playlists["name"].iat[row]),
                    "seeds": len(seeds),
                    "matches": int(matched.sum()),
                    "share": float(matched.mean()) if len(ids) else 0.0,
                    "recommended": ids,
                    "matched": matched,
                    "labels": found,
                }
            )
        if progress is not None:
            progress(min(start + batch_size, len(rows)), len(rows))
    columns = ["row", "pid", "name", "seeds", "matches", "share", "recommended", "matched", "labels"]
    per_playlist = pd.DataFrame.from_records(records, columns=columns)
    name = model_name or getattr(model, "name", type(model).__name__)
    return GenreMatch(genre, name, n, n_seeds, per_playlist, base_rate, entry_rate)


def example_table(corpus: Corpus, result: GenreMatch, position: int) -> pd.DataFrame:
    """The recommendations for one playlist of a GenreMatch: rank, match, track, artist, genre label."""
    row = result.per_playlist.iloc[position]
    ids = np.asarray(row["recommended"], dtype=np.int64)
    tracks = corpus.tracks.iloc[ids]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(ids) + 1),
            "match": np.asarray(row["matched"], dtype=bool),
            "track": tracks["name"].to_numpy(),
            "artist": tracks["artist"].to_numpy(),
            "genre label": [g if g is not None else "" for g in row["labels"]],
        }
    )
