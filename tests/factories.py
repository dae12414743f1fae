"""Small hand-made MPD data for tests: playlists as dicts, slices as JSON bytes, tiny corpora.

Import from a test module with `from factories import ...` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from songrec.corpus import Corpus
from songrec.ingest import load_corpus

FAST_NEURAL = {
    "epochs": 12,
    "embedding_dim": 48,
    "hidden_dim": 96,
    "learning_rate": 0.01,
    "batch_size": 32,
    "members": 2,
    "seed": 0,
    "patience": 0,
    "init": "random",
    "val_share": 0.05,
}
"""Neural settings that train in seconds on the 600-playlist demo data and still learn its genres
(every epoch runs: no early stopping, so the history tests see all of them; 5% held out, so the
validation path is the one tested; a random start, no ALS fit
first: test_neural.py checks the ALS start on its own)."""


def track(uri: str, artist: str = "Artist", name: str | None = None) -> dict:
    """One track entry in the trimmed MPD format (the fields songrec requires)."""
    return {"artist_name": artist, "track_uri": uri, "track_name": name or f"Song {uri}"}


def playlist(pid: int, tracks: Sequence[str | dict], name: str = "my playlist", **extra) -> dict:
    """A playlist dict; a track given as a URI string gets artist "Artist"."""
    entries = [track(t) if isinstance(t, str) else t for t in tracks]
    return {"name": name, "pid": pid, "num_tracks": len(entries), "num_followers": 1, "tracks": entries, **extra}


def slice_bytes(playlists: Sequence[dict], indent: int | None = 4, info: bool = True) -> bytes:
    """A slice file's bytes, indented like the real MPD files."""
    body: dict = {"playlists": list(playlists)}
    if info:
        body = {"info": {"generated_on": "test", "slice": "0-999", "version": "v1"}, **body}
    return json.dumps(body, indent=indent, ensure_ascii=False).encode("utf-8")


def corpus_of(playlists: Sequence[dict], name: str = "mpd.slice.0-999.json") -> Corpus:
    """A Corpus from playlist dicts (one uploaded slice), failing loudly on any load problem."""
    corpus, report = load_corpus([(name, slice_bytes(playlists))])
    assert not report.errors, report.errors
    return corpus


def tiny_playlists() -> list[dict]:
    """Three playlists whose statistics are worked out by hand in test_corpus.py.

    tracks (first-seen order = track id): a0 b1 c2 d3 e4; artists X (a, c), Y (b, e), Z (d).
    """
    a, b, c = track("u:a", "X"), track("u:b", "Y"), track("u:c", "X")
    d, e = track("u:d", "Z"), track("u:e", "Y")
    return [
        playlist(10, [a, b, c], name="Country"),
        playlist(11, [a, d], name="country "),
        playlist(12, [b, b, e], name="Rock"),
    ]


def write_messy_slices(folder: Path) -> Path:
    """Good, broken, gzip, empty-playlist and duplicate-pid files, with repeats and missing albums."""
    a, b = track("u:a", "X", "A"), {**track("u:b", "Y", "B"), "album_name": "Album B"}
    files = {
        "mpd.slice.0-999.json": slice_bytes([playlist(0, [a, b, a]), playlist(1, [b, "u:c"]), playlist(2, [])]),
        "mpd.slice.1000-1999.json": b'{"playlists": [',
        "mpd.slice.2000-2999.json": slice_bytes(
            [playlist(2000, ["u:d", "u:c"]), playlist(1, ["u:e", "u:a"]), playlist(2001, ["u:e", "u:f", "u:d"])]
        ),
        "mpd.slice.3000-3999.json.gz": gzip.compress(slice_bytes([playlist(3000, ["u:g", "u:a"], name="Rock 🎸")])),
        "mpd.slice.4000-4999.json": slice_bytes([]),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder
