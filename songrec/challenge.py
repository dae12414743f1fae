"""The challenge's file formats: challenge sets (seed tracks only) and submissions (500 URIs each)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from songrec.corpus import Corpus
from songrec.errors import UserError
from songrec.models.base import Recommender
from songrec.mpd import ChallengePlaylist, ChallengeSet, Track, read_challenge
from songrec.protocol import Case

SUBMISSION_SIZE = 500


def build_challenge_set(corpus: Corpus, cases: Sequence[Case]) -> ChallengeSet:
    """The official challenge-set JSON for cases drawn from `corpus` (titles absent where withheld)."""
    tracks = corpus.tracks
    playlists = []
    for case in cases:
        seed_tracks = [
            Track(
                pos=int(pos),
                artist_name=str(tracks["artist"].iat[t]),
                track_uri=str(tracks["uri"].iat[t]),
                track_name=str(tracks["name"].iat[t]),
                album_name=None if tracks["album"].iat[t] is None else str(tracks["album"].iat[t]),
            )
            for t, pos in zip(case.seeds.tolist(), case.seed_positions.tolist(), strict=True)
        ]
        playlists.append(
            ChallengePlaylist(
                name=case.title,
                pid=case.pid,
                num_holdouts=case.num_tracks - len(seed_tracks),
                num_samples=len(seed_tracks),
                num_tracks=case.num_tracks,
                tracks=seed_tracks,
            )
        )
    return ChallengeSet(date=datetime.date.today().isoformat(), version="songrec-v1", playlists=playlists)


def write_challenge_set(path: str | os.PathLike, challenge: ChallengeSet) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(challenge), indent=2))


def write_truth(path: str | os.PathLike, corpus: Corpus, cases: Sequence[Case]) -> None:
    """The withheld tracks of each case, as {pid: [uri, ...]}, for scoring a submission later."""
    uris = corpus.tracks["uri"]
    truth = {str(case.pid): [str(uris.iat[t]) for t in case.truth.tolist()] for case in cases}
    Path(path).write_bytes(msgspec.json.encode(truth))


def submission_rows(
    model: Recommender,
    challenge: ChallengeSet,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[int, list[str]]]:
    """(pid, 500 distinct URIs with no seed) for every challenge playlist."""
    rows = []
    playlists = challenge.playlists
    for start in range(0, len(playlists), batch_size):
        batch = playlists[start : start + batch_size]
        seeds = [model.track_ids([t.track_uri for t in p.tracks]) for p in batch]
        results = model.recommend_batch(seeds, [p.name for p in batch], SUBMISSION_SIZE)
        for playlist, (ids, _) in zip(batch, results, strict=True):
            seed_uris = {t.track_uri for t in playlist.tracks}
            uris = [model.track_uris[i] for i in ids.tolist()]
            uris = [u for u in uris if u not in seed_uris]
            if len(uris) < SUBMISSION_SIZE:
                raise UserError(
                    f"playlist pid {playlist.pid}: only {len(uris)} distinct tracks to recommend; "
                    f"a submission needs {SUBMISSION_SIZE} (train on more playlists)"
                )
            rows.append((playlist.pid, uris[:SUBMISSION_SIZE]))
        if progress is not None:
            progress(min(start + batch_size, len(playlists)), len(playlists))
    return rows


def write_submission(path: str | os.PathLike, rows: Sequence[tuple[int, list[str]]], team: str, contact: str) -> None:
    """The official CSV: a team_info line, then `pid,uri1,...,uri500` per playlist."""
    with Path(path).open("w", encoding="utf-8") as out:
        out.write(f"team_info,{team},{contact}\n")
        for pid, uris in rows:
            out.write(f"{pid}," + ",".join(uris) + "\n")


__all__ = [
    "build_challenge_set",
    "read_challenge",
    "submission_rows",
    "write_challenge_set",
    "write_submission",
    "write_truth",
]
