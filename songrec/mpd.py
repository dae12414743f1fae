"""The MPD slice file format: typed structs, decoding, and errors that say where a file is wrong.

msgspec decodes and validates in one pass (a real 1,000-playlist slice is ~33 MB), and its
error paths (`$.playlists[3].tracks[0].track_uri`) become the `field` of an `MPDFormatError`.
Every file is read under a size limit (gzip is inflated in chunks, so a small file that
inflates to gigabytes is refused after the limit, not after the gigabytes), and every way a
file can be wrong (unreadable, broken gzip, too deep, numbers out of range) is an
`MPDFormatError` for that file, never an exception that stops the others.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated

import msgspec

from songrec.errors import UserError

SLICE_PATTERN = re.compile(r"^mpd\.slice\.(\d+)-(\d+)\.json(\.gz)?$")

DEFAULT_MAX_FILE_SIZE = 256 << 20
"""Bytes of JSON one file may hold, after inflating: 8x the largest real slice (~33 MB), and small
enough that a file refused at the limit has cost well under 1 GiB. SONGREC_MAX_FILE_SIZE overrides it."""

_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"

Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A pid or a count: never negative, and it fits the corpus's int64 columns."""


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
    pid: Count
    modified_at: int | None = None
    num_tracks: Count | None = None
    num_albums: int | None = None
    num_followers: Count = 0
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


class MPDFormatError(UserError):
    """A file that is not a valid MPD slice: names the file, the field and the problem."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        where = f" at {field}" if field else ""
        super().__init__(f"{file}{where}: {problem}")

    def to_keep(self) -> MPDFormatError:
        """This error without its traceback, to keep in a report: the frames of a traceback hold the
        file's bytes (up to the size limit) for as long as the error lives."""
        return MPDFormatError(self.file, self.field, self.problem)


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
_BLANK = re.compile(rb"\s*\Z")


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


def _explain(error: msgspec.DecodeError, data: bytes, skipped: int = 0) -> tuple[str, str]:
    """Turn a msgspec error into (field path, problem) a person can act on; `skipped`: bytes at the
    start of `data` the decoder did not see (a byte order mark), so positions are the file's."""
    message = str(error)
    if isinstance(error, msgspec.ValidationError):
        text, _, path = message.partition(" - at `")
        path = path.rstrip("`").removeprefix("$").lstrip(".")
        missing = _MISSING_FIELD.match(text)
        if missing:
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
            return path, "required field is missing"
        return path, text[0].lower() + text[1:] if text else message
    if "truncated" in message and _BLANK.match(data):
        return "", "file is empty" if not data else "file is empty (only whitespace)"
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
        offset = int(position.group(1)) + skipped
        where = _line_col(data, offset)
        problem = message.split(" (byte")[0].removeprefix("JSON is malformed: ")
        return _path_at(data, offset), f"invalid JSON at {where}: {problem}"
    return "", f"invalid JSON: {message}"


def parse_size(text: str | int) -> int:
    """Bytes from "268435456", "256M", "1G" or "512 MiB" (powers of 1024); ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r} (give bytes, or a number followed by K, M or G)")
    number, unit = match.groups()
    size = int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))
    if size <= 0:
        raise ValueError(f"not a size: {text!r} (it must be more than 0 bytes)")
    return size


def format_size(size: int) -> str:
    """A byte count for people: 268435456 -> "256 MiB"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            value = size / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def configured_size(value: int | None, variable: str, default: int) -> int:
    """A size limit: `value` when given, else the environment variable (e.g. "512M"), else `default`."""
    if value is not None:
        if value <= 0:
            raise ValueError(f"a size limit must be more than 0 bytes, not {value}")
        return int(value)
    configured = os.environ.get(variable)
    if not configured:
        return default
    try:
        return parse_size(configured)
    except ValueError as exc:
        raise UserError(f"{variable}: {exc}") from None


def file_size_limit(value: int | None = None) -> int:
    """The limit in force: `value`, else $SONGREC_MAX_FILE_SIZE, else DEFAULT_MAX_FILE_SIZE."""
    return configured_size(value, "SONGREC_MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE)


def _too_big(name: str, what: str, limit: int) -> MPDFormatError:
    """The error of a file over the limit: `what` says by how much, as far as it was read."""
    return MPDFormatError(
        name,
        "",
        f"{what} the limit of {format_size(limit)} per file (--max-file-size or SONGREC_MAX_FILE_SIZE raises it)",
    )


def _inflate(stream: IO[bytes], name: str, limit: int) -> bytearray:
    """Inflate gzip data in chunks, refusing it as soon as it passes `limit` bytes.

    (The size a gzip trailer states is no help: it is mod 2**32, and in a cut or forged file it
    is whatever the last four bytes happen to be.)
    """
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as archive:
            while chunk := archive.read(_CHUNK):
                out += chunk
                if len(out) > limit:
                    raise _too_big(name, "inflates to more than", limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise MPDFormatError(name, "", f"broken gzip data: {exc}") from None
    return out


def inflate(data: bytes | bytearray, name: str, max_size: int | None = None) -> bytes | bytearray:
    """The JSON bytes of one file's content: gzip data inflated, plain data as it is; at most
    `max_size` bytes (default `file_size_limit()`), else MPDFormatError."""
    limit = file_size_limit(max_size)
    if data[:2] == b"\x1f\x8b":
        return _inflate(io.BytesIO(data), name, limit)
    if len(data) > limit:
        raise _too_big(name, f"is {format_size(len(data))}, more than", limit)
    return data


def read_file(path: str | os.PathLike, name: str | None = None, max_size: int | None = None) -> bytes | bytearray:
    """The JSON bytes of a file (gzip inflated), at most `max_size` bytes; MPDFormatError for a file
    that cannot be read (missing, unreadable, a folder, not a regular file, too big, broken gzip)."""
    path = Path(path)
    name = name or str(path)
    limit = file_size_limit(max_size)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            try:
                with os.scandir(path) as entries:
                    next(entries, None)
            except OSError as exc:
                raise MPDFormatError(name, "", f"cannot list folder: {exc.strerror or exc}") from None
            raise MPDFormatError(name, "", "is a folder, not a slice file")
        if not stat.S_ISREG(info.st_mode):
            raise MPDFormatError(name, "", "not a regular file (a slice is a .json or .json.gz file)")
        with path.open("rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            if gzipped:
                return _inflate(handle, name, limit)
            if info.st_size > limit:
                raise _too_big(name, f"is {format_size(info.st_size)}, more than", limit)
            data = handle.read(info.st_size + 1)  # read(limit + 1) would allocate the limit for every file
            if len(data) > info.st_size:  # it grew since stat (or stat does not know its size)
                data += handle.read(limit + 1 - len(data))
    except OSError as exc:
        raise MPDFormatError(name, "", f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _too_big(name, "holds more than", limit)
    return data


_SLICE_DEPTH = 5
"""How deep a slice nests: the file's object, playlists, a playlist, tracks, a track."""


def _deep_field(data: bytes | bytearray) -> str:
    """The field under which a too-deeply-nested file goes deeper than any slice (the key, without
    the run of [0][0]... below it)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(data):
        first = match.group()[:1]
        if first in (b"{", b"["):
            depth += 1
            if depth > _SLICE_DEPTH:
                return re.sub(r"(\[\d+\])+$", "", _path_at(data, match.start()))
        elif first in (b"}", b"]"):
            depth -= 1
    return ""


def json_text(data: bytes | bytearray) -> bytes | bytearray | memoryview:
    """The bytes a JSON decoder should read: those after a UTF-8 byte order mark, if there is one
    (some editors on Windows write it), without copying."""
    return memoryview(data)[len(_BOM) :] if data[: len(_BOM)] == _BOM else data


def decode_json(data: bytes | bytearray, name: str, kind: type = Slice):
    """Decode JSON bytes (a UTF-8 byte order mark is allowed) into `kind`, or raise MPDFormatError."""
    text = json_text(data)
    skipped = len(data) - len(text)
    try:
        return _decoder(kind).decode(text)
    except msgspec.DecodeError as exc:
        path, problem = _explain(exc, data, skipped)
        raise MPDFormatError(name, path, problem) from None
    except RecursionError:
        problem = f"JSON nested too deeply to decode (a slice nests {_SLICE_DEPTH} levels)"
        raise MPDFormatError(name, _deep_field(data), problem) from None


def decode(data: bytes | bytearray, name: str, kind: type = Slice, max_size: int | None = None):
    """Decode the bytes of one file (plain or gzip JSON) into `kind`, or raise MPDFormatError."""
    return decode_json(inflate(data, name, max_size), name, kind)


def read_slice(source: str | os.PathLike | bytes, name: str | None = None, max_size: int | None = None) -> Slice:
    """Read one slice from a path or from the bytes of an uploaded file (at most `max_size` bytes of JSON)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return decode(bytes(source), name or "<uploaded file>", max_size=max_size)
    name = name or str(source)
    return decode_json(read_file(source, name, max_size), name)


def read_challenge(path: str | os.PathLike) -> ChallengeSet:
    """Read a challenge set in the official format (seed tracks only)."""
    return decode_json(read_file(path), str(path), ChallengeSet)


def _slice_sort_key(path: Path) -> tuple[int, str]:
    match = SLICE_PATTERN.match(path.name)
    return (int(match.group(1)) if match else 1 << 62, path.name)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a parent that cannot be searched: reading the path says why
        return False


def find_slice_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders to their slice files (`*.json`, `*.json.gz`), in slice order.

    Nothing is dropped silently: a folder that cannot be listed stays in the list as itself, and
    an entry named like a slice that is not a plain file (a broken link, a loop) is listed too,
    so reading them reports why.
    """
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if not _is_dir(path):
            found.append(path)
            continue
        try:
            files = [p for p in path.iterdir() if p.name.endswith((".json", ".json.gz")) and not _is_dir(p)]
        except OSError:
            found.append(path)
            continue
        found.extend(sorted(files, key=_slice_sort_key))
    return found


def iter_slices(
    sources: Iterable[str | os.PathLike | tuple[str, bytes]], max_size: int | None = None
) -> Iterator[tuple[str, Slice | MPDFormatError]]:
    """Yield (file name, slice or its error) one file at a time, so a folder never sits in memory whole.

    A source is a path (a folder expands to its slices) or a (name, bytes) pair from an upload.
    """
    for source in sources:
        if isinstance(source, tuple):
            name, data = source
            try:
                yield name, read_slice(data, name, max_size)
            except MPDFormatError as exc:
                yield name, exc.to_keep()
            continue
        for path in find_slice_files([source]):
            try:
                yield str(path), read_slice(path, max_size=max_size)
            except MPDFormatError as exc:
                yield str(path), exc.to_keep()


def encode_slice(playlists: list[Playlist], info: SliceInfo | None = None, indent: int = 4) -> bytes:
    """Encode playlists as an MPD slice, indented like the real files."""
    raw = msgspec.json.encode(Slice(playlists=playlists, info=info))
    return msgspec.json.format(raw, indent=indent) if indent else raw
