"""The MPD slice file format: typed structs, decoding, and errors that say where a file is wrong.

msgspec decodes and validates in one pass (a real 1,000-playlist slice is ~33 MB), and its
error paths (`$.playlists[3].tracks[0].track_uri`) become the `field` of an `MPDFormatError`.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

SLICE_PATTERN = re.compile(r"^mpd\.slice\.(\d+)-(\d+)\.json(\.gz)?$")


class Track(msgspec.Struct, omit_defaults=True, kw_only=True):
    pos: int | None = None
    artist_name: str
    track_uri: str
    artist_uri: str | None = None
    track_name: str
    album_uri: str | None = None
    duration_ms: int | None = None
    album_name: str | None = None


class Playlist(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str
    collaborative: str | bool | None = None
    pid: int
    modified_at: int | None = None
    num_tracks: int | None = None
    num_albums: int | None = None
    num_followers: int = 0
    tracks: list[Track]
    num_edits: int | None = None
    duration_ms: int | None = None
    num_artists: int | None = None
    description: str | None = None


class SliceInfo(msgspec.Struct, omit_defaults=True):
    generated_on: str | None = None
    slice: str | None = None
    version: str | None = None


class Slice(msgspec.Struct, omit_defaults=True, kw_only=True):
    info: SliceInfo | None = None
    playlists: list[Playlist]


class ChallengePlaylist(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A playlist of a challenge set: seed tracks only, the title absent in no-title categories."""

    name: str | None = None
    pid: int
    num_holdouts: int
    num_samples: int
    num_tracks: int
    tracks: list[Track]


class ChallengeSet(msgspec.Struct, omit_defaults=True, kw_only=True):
    date: str | None = None
    version: str | None = None
    playlists: list[ChallengePlaylist]


class MPDFormatError(ValueError):
    """A file that is not a valid MPD slice: names the file, the field and the problem."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        where = f" at {field}" if field else ""
        super().__init__(f"{file}{where}: {problem}")


@dataclass
class LoadReport:
    """What happened while reading many files: nothing is dropped silently."""

    files_read: list[str] = field(default_factory=list)
    errors: list[MPDFormatError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: LoadReport) -> None:
        self.files_read += other.files_read
        self.errors += other.errors
        self.warnings += other.warnings


_DECODERS: dict[type, msgspec.json.Decoder] = {}
_MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
_BYTE_POSITION = re.compile(r"\(byte (\d+)\)")


def _decoder(kind: type) -> msgspec.json.Decoder:
    if kind not in _DECODERS:
        _DECODERS[kind] = msgspec.json.Decoder(kind)
    return _DECODERS[kind]


def _line_col(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {col}"


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\Z)|[{}\[\],:]', re.DOTALL)


def _path_at(data: bytes, offset: int) -> str:
    """The field path (`playlists[3].tracks[0].track_uri`) open at byte `offset` of broken JSON.

    Syntax errors come from the parser with a byte position only; walking the structure up to
    there names the playlist and field, so a person knows where to look in a 33 MB file.
    """
    stack: list[list] = []  # [is_object, key or index]
    key: bytes | None = None
    for match in _JSON_TOKEN.finditer(data, 0, offset):
        token = match.group()
        first = token[:1]
        if first == b'"':
            key = token
        elif first in (b"{", b"["):
            stack.append([first == b"{", None if first == b"{" else 0])
        elif first in (b"}", b"]"):
            if stack:
                stack.pop()
        elif first == b":":
            if stack and stack[-1][0] and key is not None:
                stack[-1][1] = key[1:-1].decode("utf-8", "replace")
        elif first == b"," and stack:
            stack[-1][1] = None if stack[-1][0] else stack[-1][1] + 1
    path = ""
    for is_object, part in stack:
        if part is None:
            break
        path += (f".{part}" if path else part) if is_object else f"[{part}]"
    return path


def _explain(error: msgspec.DecodeError, data: bytes) -> tuple[str, str]:
    """Turn a msgspec error into (field path, problem) a person can act on."""
    message = str(error)
    if isinstance(error, msgspec.ValidationError):
        text, _, path = message.partition(" - at `")
        path = path.rstrip("`").removeprefix("$").lstrip(".")
        missing = _MISSING_FIELD.match(text)
        if missing:
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
            return path, "required field is missing"
        return path, text[0].lower() + text[1:] if text else message
    if "truncated" in message:
        end = len(data)
        problem = f"file is truncated: it ends at byte {end} ({_line_col(data, end)}) before the JSON is complete"
        return _path_at(data, end), problem
    if "UTF-8" in message:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _path_at(data, exc.start), f"not valid UTF-8 text (bad byte at {_line_col(data, exc.start)})"
        return "", "not valid UTF-8 text"
    position = _BYTE_POSITION.search(message)
    if position:
        offset = int(position.group(1))
        where = _line_col(data, offset)
        problem = message.split(" (byte")[0].removeprefix("JSON is malformed: ")
        return _path_at(data, offset), f"invalid JSON at {where}: {problem}"
    return "", f"invalid JSON: {message}"


def _maybe_gunzip(data: bytes, name: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MPDFormatError(name, "", f"broken gzip data: {exc}") from exc
    return data


def decode(data: bytes, name: str, kind: type = Slice):
    """Decode the bytes of one file (plain or gzip JSON) into `kind`, or raise MPDFormatError."""
    data = _maybe_gunzip(data, name)
    try:
        return _decoder(kind).decode(data)
    except msgspec.DecodeError as exc:
        path, problem = _explain(exc, data)
        raise MPDFormatError(name, path, problem) from None


def read_slice(source: str | os.PathLike | bytes, name: str | None = None) -> Slice:
    """Read one slice from a path or from the bytes of an uploaded file."""
    if isinstance(source, bytes | bytearray | memoryview):
        return decode(bytes(source), name or "<uploaded file>")
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MPDFormatError(name or str(path), "", f"cannot read file: {exc.strerror or exc}") from exc
    return decode(data, name or str(path))


def read_challenge(path: str | os.PathLike) -> ChallengeSet:
    """Read a challenge set in the official format (seed tracks only)."""
    return decode(Path(path).read_bytes(), str(path), ChallengeSet)


def _slice_sort_key(path: Path) -> tuple[int, str]:
    match = SLICE_PATTERN.match(path.name)
    return (int(match.group(1)) if match else 1 << 62, path.name)


def find_slice_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders to their slice files (`*.json`, `*.json.gz`), in slice order."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and p.name.endswith((".json", ".json.gz"))]
            found.extend(sorted(files, key=_slice_sort_key))
        else:
            found.append(path)
    return found


def iter_slices(
    sources: Iterable[str | os.PathLike | tuple[str, bytes]],
) -> Iterator[tuple[str, Slice | MPDFormatError]]:
    """Yield (file name, slice or its error) one file at a time, so a folder never sits in memory whole.

    A source is a path (a folder expands to its slices) or a (name, bytes) pair from an upload.
    """
    for source in sources:
        if isinstance(source, tuple):
            name, data = source
            try:
                yield name, read_slice(data, name)
            except MPDFormatError as exc:
                yield name, exc
            continue
        for path in find_slice_files([source]):
            try:
                yield str(path), read_slice(path)
            except MPDFormatError as exc:
                yield str(path), exc


def encode_slice(playlists: list[Playlist], info: SliceInfo | None = None, indent: int = 4) -> bytes:
    """Encode playlists as an MPD slice, indented like the real files."""
    raw = msgspec.json.encode(Slice(playlists=playlists, info=info))
    return msgspec.json.format(raw, indent=indent) if indent else raw
