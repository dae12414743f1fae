"""Generated demo data in the MPD format: invented artists and songs, genres, Zipf popularity.

Deterministic for a seed, so tests, the app and benchmarks see the same playlists. The files
look like real slices (every field, 4-space indentation, 1,000 playlists a file), so timings
measured on them carry over to the real MPD.
"""

from __future__ import annotations

import multiprocessing
import os
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from songrec.mpd import Playlist, SliceInfo, Track, encode_slice

TRACKS_PER_PLAYLIST = 2.262292
"""Unique tracks per playlist in the full MPD (2,262,292 / 1,000,000): the default vocabulary size."""


@dataclass(frozen=True)
class Genre:
    name: str
    share: float
    playlist_names: tuple[str, ...]
    words: tuple[str, ...]
    artist_style: str


GENRES: tuple[Genre, ...] = (
    Genre(
        "pop",
        0.19,
        ("pop", "Pop Hits", "top hits", "summer pop", "Today's Pop", "pop!!"),
        ("Heart", "Love", "Tonight", "Dance", "Starlight", "Forever", "Dream", "Kiss"),
        "person",
    ),
    Genre(
        "hip-hop",
        0.15,
        ("rap", "Hip Hop", "hip-hop", "trap", "Rap Caviar", "hiphop", "RAP 🔥"),
        ("Hustle", "Money", "Crown", "Block", "Flex", "Trap", "Gold", "Street"),
        "rapper",
    ),
    Genre(
        "country",
        0.12,
        ("country", "Country Music", "country hits", "COUNTRY", "country 🤠", "Country Roads"),
        ("Whiskey", "Dirt Road", "Tailgate", "Truck", "Boots", "Hometown", "Porch", "Backroad"),
        "person",
    ),
    Genre(
        "rock",
        0.12,
        ("rock", "Classic Rock", "rock n roll", "Rock Anthems", "ROCK"),
        ("Thunder", "Highway", "Fire", "Stone", "Rebel", "Wild", "Electric", "Riot"),
        "band",
    ),
    Genre(
        "christmas",
        0.06,
        ("Christmas", "christmas music", "Xmas", "Holiday Songs", "christmas 🎄", "holiday"),
        ("Snow", "Jingle", "Santa", "Mistletoe", "Sleigh", "Winter", "Bells", "Christmas"),
        "person",
    ),
    Genre(
        "edm",
        0.08,
        ("edm", "EDM", "house", "electronic", "Festival Bangers", "dance"),
        ("Pulse", "Bass", "Drop", "Neon", "Rave", "Laser", "Echo", "Circuit"),
        "dj",
    ),
    Genre(
        "indie",
        0.08,
        ("indie", "Indie Vibes", "chill indie", "alternative", "indie folk"),
        ("Paper", "Moon", "Ocean", "Static", "Glass", "Coffee", "Autumn", "Polaroid"),
        "band",
    ),
    Genre(
        "latin",
        0.07,
        ("latin", "Reggaeton", "latino", "musica latina", "Baila"),
        ("Corazón", "Fuego", "Noche", "Bailar", "Amor", "Playa", "Ritmo", "Luna"),
        "person",
    ),
    Genre(
        "jazz",
        0.06,
        ("jazz", "Jazz Classics", "smooth jazz", "coffee jazz"),
        ("Blue", "Swing", "Velvet", "Smoke", "Satin", "Midnight", "Bourbon", "Saxophone"),
        "person",
    ),
    Genre(
        "classical",
        0.07,
        ("classical", "Classical Music", "study classical", "piano"),
        ("Sonata", "Nocturne", "Prelude", "Etude", "Adagio", "Concerto", "Suite", "Waltz"),
        "composer",
    ),
)

GENERIC_NAMES = (
    "Summer",
    "Party",
    "workout",
    "chill",
    "Road Trip",
    "gym",
    "vibes",
    "throwback",
    "my playlist",
    "Good Vibes",
    "car",
    "study",
    "Feels",
    "favorites",
    "mix",
)
FIRST = (
    "Jake",
    "Emma",
    "Luke",
    "Ava",
    "Cole",
    "Mia",
    "Ray",
    "Zoe",
    "Nico",
    "Lena",
    "Omar",
    "Iris",
    "Wade",
    "Nora",
    "Dex",
    "Ruby",
    "Milo",
    "Cora",
    "Jett",
    "Lila",
    "Hank",
    "Skye",
    "Remy",
    "Tess",
)
LAST = (
    "Harlow",
    "Vance",
    "Brooks",
    "Kestrel",
    "Monroe",
    "Sable",
    "Quill",
    "Thorne",
    "Rivers",
    "Pryce",
    "Ember",
    "Lowe",
    "Marsh",
    "Calder",
    "Wilde",
    "Hollis",
    "Frost",
    "Reyes",
    "Banks",
    "Stroud",
)
NOUNS = ("Wolves", "Lanterns", "Echoes", "Pilots", "Saints", "Comets", "Ravens", "Tides", "Ghosts", "Kings")
EXTRA = (
    "Song",
    "Days",
    "Nights",
    "Again",
    "Anthem",
    "Blues",
    "Ride",
    "Lights",
    "Heart",
    "Story",
    "Road",
    "Feeling",
    "Rain",
    "Home",
    "Sky",
    "Time",
    "Girl",
    "Boy",
    "Fever",
    "Dreams",
)
SUBSTYLES = 4
PURE_SHARE = 0.75
BASE62 = np.array(list(string.digits + string.ascii_letters))


@dataclass
class Catalogue:
    """The invented tracks: genre, sub-style, artist, album, name, URI and popularity weight."""

    genre: np.ndarray
    substyle: np.ndarray
    artist: np.ndarray
    album: np.ndarray
    names: list[str]
    uris: list[str]
    durations: np.ndarray
    artist_names: list[str]
    artist_uris: list[str]
    album_names: list[str]
    album_uris: list[str]
    cdfs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]


def _uris(rng: np.random.Generator, kind: str, count: int) -> list[str]:
    codes = BASE62[rng.integers(0, 62, size=(count, 22))]
    return [f"spotify:{kind}:" + "".join(row) for row in codes]


def _artist_name(rng: np.random.Generator, style: str) -> str:
    first, last, noun = FIRST[rng.integers(len(FIRST))], LAST[rng.integers(len(LAST))], NOUNS[rng.integers(len(NOUNS))]
    return {
        "band": f"The {last} {noun}",
        "rapper": f"{'Lil ' if rng.random() < 0.4 else ''}{first} {last[0]}.",
        "dj": f"DJ {first}{last[:2].upper()}",
        "composer": f"{first} von {last}",
    }.get(style, f"{first} {last}")


def make_catalogue(n_tracks: int, seed: int = 0, zipf: float = 0.9) -> Catalogue:
    rng = np.random.default_rng(seed)
    shares = np.array([g.share for g in GENRES])
    genre = rng.choice(len(GENRES), size=n_tracks, p=shares / shares.sum()).astype(np.int16)
    substyle = rng.integers(0, SUBSTYLES, size=n_tracks).astype(np.int16)
    tracks_per_artist = 8
    n_artists = max(len(GENRES), n_tracks // tracks_per_artist)
    artist_genre = rng.choice(len(GENRES), size=n_artists, p=shares / shares.sum())
    artist = np.empty(n_tracks, dtype=np.int64)
    for g in range(len(GENRES)):
        members = np.flatnonzero(genre == g)
        pool = np.flatnonzero(artist_genre == g)
        if len(pool) == 0:
            pool = np.array([g % n_artists])
        artist[members] = pool[rng.integers(0, len(pool), size=len(members))]
    album = artist * 3 + rng.integers(0, 3, size=n_tracks)
    artist_names = [_artist_name(rng, GENRES[artist_genre[a]].artist_style) for a in range(n_artists)]
    words = [GENRES[g].words for g in genre]
    names = [
        f"{w[rng.integers(len(w))]} {EXTRA[rng.integers(len(EXTRA))]}" + (f" ({i % 97})" if rng.random() < 0.2 else "")
        for i, w in enumerate(words)
    ]
    album_names = [
        f"{EXTRA[i % len(EXTRA)]} of {NOUNS[(i // 7) % len(NOUNS)]} Vol. {i % 5 + 1}" for i in range(n_artists * 3)
    ]
    popularity = 1.0 / np.power(rng.permutation(n_tracks) + 1.0, zipf)
    cdfs = {}
    for g in range(len(GENRES)):
        for s in range(SUBSTYLES):
            members = np.flatnonzero((genre == g) & (substyle == s))
            if len(members) == 0:
                members = np.flatnonzero(genre == g)
            if len(members) == 0:
                members = np.arange(n_tracks)
            cdf = np.cumsum(popularity[members])
            cdfs[(g, s)] = (members, cdf / cdf[-1])
    return Catalogue(
        genre=genre,
        substyle=substyle,
        artist=artist,
        album=album,
        names=names,
        uris=_uris(rng, "track", n_tracks),
        durations=rng.integers(120_000, 330_000, size=n_tracks),
        artist_names=artist_names,
        artist_uris=_uris(rng, "artist", n_artists),
        album_names=album_names,
        album_uris=_uris(rng, "album", n_artists * 3),
        cdfs=cdfs,
    )


def _draw(rng: np.random.Generator, catalogue: Catalogue, genre: int, count: int) -> np.ndarray:
    """`count` tracks of a genre, mostly from one sub-style, drawn by popularity."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    main = int(rng.integers(SUBSTYLES))
    styles = np.where(rng.random(count) < 0.7, main, rng.integers(0, SUBSTYLES, size=count))
    picks = np.empty(count, dtype=np.int64)
    for s in np.unique(styles):
        where = styles == s
        members, cdf = catalogue.cdfs[(genre, int(s))]
        picks[where] = members[np.searchsorted(cdf, rng.random(int(where.sum())))]
    return picks


def _unique_draw(
    rng: np.random.Generator, catalogue: Catalogue, genre: int, count: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """`count` distinct tracks (fewer only when the genre runs out), oversampling to replace repeats."""
    picks = np.zeros(0, dtype=np.int64)
    for _ in range(4):
        drawn = np.concatenate([picks, _draw(rng, catalogue, genre, 2 * count)])
        _, first = np.unique(drawn, return_index=True)
        picks = drawn[np.sort(first)]
        if exclude is not None and len(exclude):
            picks = picks[~np.isin(picks, exclude)]
        if len(picks) >= count:
            break
    return picks[:count]


def _lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    """MPD-like lengths: 5 to 250, median near 49, mean near 66."""
    return np.clip(rng.lognormal(np.log(48), 0.85, size=count), 5, 250).astype(np.int64)


@dataclass
class _Draw:
    """One generated playlist before rendering: its tracks and every other field."""

    pid: int
    ids: np.ndarray
    name: str
    modified_at: int
    num_followers: int
    num_edits: int
    description: str | None

    def playlist(self, catalogue: Catalogue, tracks: list[Track]) -> Playlist:
        ids = self.ids
        return Playlist(
            name=self.name,
            collaborative="false",
            pid=self.pid,
            modified_at=self.modified_at,
            num_tracks=len(ids),
            num_albums=len(set(catalogue.album[ids].tolist())),
            num_followers=self.num_followers,
            tracks=tracks,
            num_edits=self.num_edits,
            duration_ms=int(catalogue.durations[ids].sum()),
            num_artists=len(set(catalogue.artist[ids].tolist())),
            description=self.description,
        )


def _draw_playlists(catalogue: Catalogue, first_pid: int, count: int, seed: int) -> Iterator[_Draw]:
    """The random draws of a slice, in a fixed order (the rendering never touches the generator)."""
    rng = np.random.default_rng([seed, first_pid])
    shares = np.array([g.share for g in GENRES])
    genres = rng.choice(len(GENRES), size=count, p=shares / shares.sum())
    lengths = _lengths(rng, count)
    for offset in range(count):
        genre, length = int(genres[offset]), int(lengths[offset])
        pure = rng.random() < PURE_SHARE
        n_main = length if pure else int(round(length * rng.uniform(0.5, 0.8)))
        other = int(rng.integers(len(GENRES)))
        main_ids = _unique_draw(rng, catalogue, genre, n_main)
        ids = np.concatenate([main_ids, _unique_draw(rng, catalogue, other, length - n_main, exclude=main_ids)])
        rng.shuffle(ids)
        names = GENRES[genre].playlist_names if pure or rng.random() < 0.5 else GENERIC_NAMES
        yield _Draw(
            pid=first_pid + offset,
            ids=ids,
            name=names[int(rng.integers(len(names)))],
            modified_at=int(1_400_000_000 + rng.integers(0, 100_000_000)),
            num_followers=int(rng.zipf(2.0)),
            num_edits=int(rng.integers(1, 30)),
            description="songs for the season" if rng.random() < 0.02 else None,
        )


def _track(catalogue: Catalogue, t: int, pos: int | None) -> Track:
    return Track(
        pos=pos,
        artist_name=catalogue.artist_names[catalogue.artist[t]],
        track_uri=catalogue.uris[t],
        artist_uri=catalogue.artist_uris[catalogue.artist[t]],
        track_name=catalogue.names[t],
        album_uri=catalogue.album_uris[catalogue.album[t]],
        duration_ms=int(catalogue.durations[t]),
        album_name=catalogue.album_names[catalogue.album[t]],
    )


def generate_playlists(catalogue: Catalogue, first_pid: int, count: int, seed: int) -> list[Playlist]:
    return [
        draw.playlist(catalogue, [_track(catalogue, t, pos) for pos, t in enumerate(draw.ids.tolist())])
        for draw in _draw_playlists(catalogue, first_pid, count, seed)
    ]


_TRACKS_MARKER = '\n            "tracks": []'
_TRACK_OPEN = '\n                {\n                    "pos": '


class _Renderer:
    """Writes slices as text without a Track object per entry: each track's JSON (all fields but
    `pos`) is rendered once, in exactly the layout `encode_slice` gives, and joined per playlist.
    The bytes equal `encode_slice(generate_playlists(...))`, several times faster."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._fragments: list[str] | None = None

    def fragments(self) -> list[str]:
        """Every track's fields after `pos`, indented for its place in a slice (built on first use)."""
        if self._fragments is None:
            c = self.catalogue
            quote = msgspec.json.Encoder().encode

            def quoted(values) -> list[str]:
                return [quote(v).decode() for v in values]

            artist_names, artist_uris = quoted(c.artist_names), quoted(c.artist_uris)
            album_names, album_uris = quoted(c.album_names), quoted(c.album_uris)
            indent, close = " " * 20, " " * 16
            self._fragments = [
                f',\n{indent}"artist_name": {artist_names[a]},\n{indent}"track_uri": {uri},\n'
                f'{indent}"artist_uri": {artist_uris[a]},\n{indent}"track_name": {name},\n'
                f'{indent}"album_uri": {album_uris[b]},\n{indent}"duration_ms": {d},\n'
                f'{indent}"album_name": {album_names[b]}\n{close}}}'
                for a, b, d, uri, name in zip(
                    c.artist.tolist(),
                    c.album.tolist(),
                    c.durations.tolist(),
                    quoted(c.uris),
                    quoted(c.names),
                    strict=True,
                )
            ]
        return self._fragments

    def slice_bytes(self, first_pid: int, count: int, seed: int, info: SliceInfo) -> bytes:
        catalogue, fragments = self.catalogue, self.fragments()
        draws = list(_draw_playlists(catalogue, first_pid, count, seed))
        skeleton = encode_slice([draw.playlist(catalogue, []) for draw in draws], info).decode()
        parts = skeleton.split(_TRACKS_MARKER)
        if len(parts) != len(draws) + 1:
            raise AssertionError("unexpected slice layout")
        out = [parts[0]]
        for draw, rest in zip(draws, parts[1:], strict=True):
            out.append('\n            "tracks": [')
            out.append(",".join([f"{_TRACK_OPEN}{pos}{fragments[t]}" for pos, t in enumerate(draw.ids.tolist())]))
            out.append("\n            ]")
            out.append(rest)
        return "".join(out).encode()


def _slice_name(start: int, slice_size: int) -> tuple[str, SliceInfo]:
    name = f"mpd.slice.{start}-{start + slice_size - 1}.json"
    info = SliceInfo(generated_on="songrec synthetic demo", slice=f"{start}-{start + slice_size - 1}", version="v1")
    return name, info


def iter_demo_slices(
    n_playlists: int, seed: int = 0, n_tracks: int | None = None, slice_size: int = 1000
) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, JSON bytes) of generated slices, one file of `slice_size` playlists at a time."""
    catalogue = make_catalogue(n_tracks or max(200, round(TRACKS_PER_PLAYLIST * n_playlists)), seed)
    renderer = _Renderer(catalogue)
    for start in range(0, n_playlists, slice_size):
        count = min(slice_size, n_playlists - start)
        name, info = _slice_name(start, slice_size)
        yield name, renderer.slice_bytes(start, count, seed, info)


_WORKER: tuple[_Renderer, Path, int, int, int] | None = None


def _write_one(start: int) -> str:
    renderer, folder, n_playlists, seed, slice_size = _WORKER
    name, info = _slice_name(start, slice_size)
    (folder / name).write_bytes(renderer.slice_bytes(start, min(slice_size, n_playlists - start), seed, info))
    return name


def write_demo(
    out: str | os.PathLike,
    n_playlists: int = 2000,
    seed: int = 0,
    n_tracks: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Write generated slices into `out`; returns the file paths.

    `workers` processes render files in parallel (default: up to 2 for 20 files or more, where
    the work pays for the processes); the files are the same bytes whatever the number.
    """
    global _WORKER
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    slice_size = 1000
    starts = list(range(0, n_playlists, slice_size))
    total = len(starts)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if total >= 20 else 1
    workers = max(1, min(workers, total))
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        paths = []
        for done, (name, data) in enumerate(iter_demo_slices(n_playlists, seed, n_tracks), start=1):
            path = folder / name
            path.write_bytes(data)
            paths.append(path)
            if progress is not None:
                progress(done, total)
        return paths
    catalogue = make_catalogue(n_tracks or max(200, round(TRACKS_PER_PLAYLIST * n_playlists)), seed)
    _WORKER = (_Renderer(catalogue), folder, n_playlists, seed, slice_size)
    names = []
    try:
        # forked workers share the catalogue; each renders and writes whole files
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for done, name in enumerate(pool.imap(_write_one, starts), start=1):
                names.append(name)
                if progress is not None:
                    progress(done, total)
    finally:
        _WORKER = None
    return [folder / name for name in names]


def genre_of_name(name: str) -> str | None:
    """The genre a generated playlist name was drawn for (None for generic names)."""
    for genre in GENRES:
        if name in genre.playlist_names:
            return genre.name
    return None
