"""One safe file format for every model: safetensors arrays plus JSON metadata.

Nothing is unpickled: a file that is not a songrec checkpoint (a pickle, a zip, text) is refused
with a clear error before any of its content is interpreted. Nothing big is allocated before the
header is checked: its size, its keys, the format version, every tensor's dtype, shape and byte
range (together they must cover the data exactly) and the size of the whole file against a limit;
string tables are checked before they are decoded (offsets rising from 0 to the end of their data,
no string over MAX_STRING_BYTES, valid UTF-8). Every message names the file.

A checkpoint is written to a path or an open binary file (`save_checkpoint`) or made as bytes
(`checkpoint_to_bytes`), and read from a path, bytes or an open binary file (`read_checkpoint`),
so the app never needs a temporary folder. What a model's arrays must look like (shapes that
match its settings, ids in range) only the model knows: it checks them with `Checkpoint.require`,
which names the file the same way.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from safetensors.numpy import save, save_file

from songrec.errors import UserError
from songrec.mpd import configured_size, format_size

FORMAT = "songrec-checkpoint"
VERSION = 1
KNOWN_VERSIONS = frozenset({1})
DEFAULT_MAX_CHECKPOINT_SIZE = 4 << 30
"""Bytes a checkpoint may have: three networks over every MPD track (2.26M x 128 float32 each) fit;
SONGREC_MAX_CHECKPOINT_SIZE overrides it."""
MAX_HEADER_BYTES = 16 << 20
"""The JSON header holds settings and one small entry per array: a few KB in a real checkpoint."""
MAX_STRING_BYTES = 4096
"""Longest string a table may hold (a Spotify URI is 36 bytes, a title word a few)."""

_METADATA_KEYS = frozenset({"format", "version", "kind", "config"})
_TENSOR_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_MAX_RANK = 8
_STRINGS = "__str__."

CheckpointTarget = str | os.PathLike | BinaryIO
"""Where a checkpoint is written: a path or a binary file open for writing."""


class CheckpointError(UserError):
    """A file that is not a songrec checkpoint, or one for another model."""


def require(condition: object, name: str, message: str) -> None:
    """Raise CheckpointError("{name}: {message}") unless `condition` holds."""
    if not condition:
        raise CheckpointError(f"{name}: {message}")


@dataclass
class Checkpoint:
    """A checkpoint read and checked: `name` is how messages call its file."""

    name: str
    kind: str
    version: int
    config: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    strings: dict[str, list[str]] = field(default_factory=dict)

    def require(self, condition: object, message: str) -> None:
        """For a model's own checks: raise CheckpointError naming this file unless `condition` holds."""
        require(condition, self.name, message)


CheckpointSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Checkpoint
"""What a checkpoint is read from: a path, its bytes, a binary file open for reading (an upload),
or a Checkpoint already read."""


def checkpoint_name(source: CheckpointSource) -> str:
    """How messages name a checkpoint: its path, an open file's (or upload's) name, else what it is."""
    if isinstance(source, Checkpoint):
        return source.name
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<checkpoint bytes>"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else "<checkpoint file>"


def checkpoint_size_limit(value: int | None = None) -> int:
    """The limit in force: `value`, else $SONGREC_MAX_CHECKPOINT_SIZE, else DEFAULT_MAX_CHECKPOINT_SIZE."""
    return configured_size(value, "SONGREC_MAX_CHECKPOINT_SIZE", DEFAULT_MAX_CHECKPOINT_SIZE)


# --- writing ---------------------------------------------------------------------------------------


def _encode_strings(key: str, values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [v.encode("utf-8") for v in values]
    for index, value in enumerate(encoded):
        if len(value) > MAX_STRING_BYTES:
            raise UserError(
                f"string table {key!r}: entry {index} is {len(value):,} bytes, more than the "
                f"{MAX_STRING_BYTES:,} a checkpoint may hold per string"
            )
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def _tensors(
    kind: str, config: dict, arrays: dict[str, np.ndarray], strings: dict[str, list[str]] | None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    for name, values in (strings or {}).items():
        tensors[f"{_STRINGS}{name}.data"], tensors[f"{_STRINGS}{name}.offsets"] = _encode_strings(name, list(values))
    metadata = {"format": FORMAT, "version": str(VERSION), "kind": kind, "config": json.dumps(config)}
    return tensors, metadata


def checkpoint_to_bytes(
    kind: str, config: dict, arrays: dict[str, np.ndarray], strings: dict[str, list[str]] | None = None
) -> bytes:
    """The bytes of a checkpoint (for a download, or to write anywhere)."""
    return save(*_tensors(kind, config, arrays, strings))


def save_checkpoint(
    target: CheckpointTarget,
    kind: str,
    config: dict,
    arrays: dict[str, np.ndarray],
    strings: dict[str, list[str]] | None = None,
) -> None:
    """Write arrays (numeric) and string lists under a typed header naming the model kind, to a
    path (its folder is made) or to a binary file open for writing."""
    if isinstance(target, str | os.PathLike):
        tensors, metadata = _tensors(kind, config, arrays, strings)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(target), metadata=metadata)
    else:
        target.write(checkpoint_to_bytes(kind, config, arrays, strings))


# --- reading ---------------------------------------------------------------------------------------


@dataclass
class _Tensor:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class _Header:
    kind: str
    version: int
    config_text: str
    tensors: list[_Tensor]
    data_length: int
    header_length: int


@contextmanager
def _opened(source: CheckpointSource, name: str) -> Iterator[BinaryIO]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        try:
            with Path(source).open("rb") as handle:
                yield handle
        except OSError as exc:
            raise CheckpointError(f"{name}: cannot read the checkpoint ({exc.strerror or exc})") from None
    else:
        yield source


def _read(stream: BinaryIO, size: int, name: str) -> bytes:
    try:
        return stream.read(size)
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read the checkpoint ({exc.strerror or exc})") from None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_header(stream: BinaryIO, name: str, limit: int) -> _Header:
    """Read and check the header alone (at most MAX_HEADER_BYTES), leaving `stream` at the data."""
    head = _read(stream, 8, name)
    if len(head) < 8:
        raise CheckpointError(f"{name}: not a songrec checkpoint (file too short)")
    size = int.from_bytes(head, "little")
    if size < 2 or size > MAX_HEADER_BYTES:
        raise CheckpointError(f"{name}: not a songrec checkpoint (no safetensors header; pickles are never loaded)")
    raw = _read(stream, size, name)
    if len(raw) < size:
        raise CheckpointError(f"{name}: not a songrec checkpoint (file too short for its header)")
    try:
        header = json.loads(raw)
        metadata = header.get("__metadata__") or {}
    except (ValueError, AttributeError, RecursionError):
        raise CheckpointError(f"{name}: not a songrec checkpoint (unreadable header)") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise CheckpointError(f"{name}: not a songrec checkpoint (format is {found!r})")
    if not all(isinstance(metadata.get(key), str) for key in ("kind", "config")):
        raise CheckpointError(f"{name}: damaged checkpoint (its header names no model kind or settings)")
    unknown = sorted(set(metadata) - _METADATA_KEYS)
    require(not unknown, name, f"damaged checkpoint (unknown header key {', '.join(map(repr, unknown))})")
    version_text = metadata.get("version")
    require(
        isinstance(version_text, str) and version_text.isdigit() and len(version_text) < 10,
        name,
        f"damaged checkpoint (format version {version_text!r} is not a number)",
    )
    version = int(version_text)
    require(
        version in KNOWN_VERSIONS,
        name,
        f"checkpoint format version {version} is unknown to this songrec, which reads version "
        f"{', '.join(map(str, sorted(KNOWN_VERSIONS)))}",
    )
    tensors = [_parse_tensor(key, entry, name) for key, entry in header.items() if key != "__metadata__"]
    data_length = _check_layout(tensors, name)
    total = 8 + size + data_length
    require(
        total <= limit,
        name,
        f"checkpoint of {format_size(total)} is more than the limit of {format_size(limit)} "
        "(SONGREC_MAX_CHECKPOINT_SIZE raises it)",
    )
    return _Header(metadata["kind"], version, metadata["config"], tensors, data_length, size)


def _parse_tensor(key: str, entry: object, name: str) -> _Tensor:
    where = f"damaged checkpoint (array {key!r}"
    require(
        isinstance(entry, dict) and set(entry) == _TENSOR_KEYS,
        name,
        f"{where} is not described by exactly {', '.join(sorted(_TENSOR_KEYS))})",
    )
    dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    require(dtype is not None, name, f"{where} has the unknown dtype {entry['dtype']!r})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    require(
        isinstance(shape, list) and len(shape) <= _MAX_RANK and all(_is_count(n) for n in shape),
        name,
        f"{where} has the shape {shape!r})",
    )
    require(
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_count(n) for n in offsets)
        and offsets[0] <= offsets[1],
        name,
        f"{where} has the byte range {offsets!r})",
    )
    expected = math.prod(shape) * dtype.itemsize
    require(
        offsets[1] - offsets[0] == expected,
        name,
        f"{where} of shape {tuple(shape)} and dtype {entry['dtype']} needs {expected:,} bytes, "
        f"its byte range holds {offsets[1] - offsets[0]:,})",
    )
    if key.startswith("__"):
        require(
            key.startswith(_STRINGS) and key.endswith((".data", ".offsets")),
            name,
            f"damaged checkpoint (unknown entry {key!r})",
        )
    return _Tensor(key, dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(tensors: list[_Tensor], name: str) -> int:
    """The arrays' byte ranges must follow each other from 0 with no gap or overlap; returns the end."""
    end = 0
    for tensor in sorted(tensors, key=lambda t: (t.begin, t.end)):
        require(
            tensor.begin == end,
            name,
            f"damaged checkpoint (array {tensor.name!r} starts at byte {tensor.begin:,} of the data, "
            f"the one before it ends at {end:,})",
        )
        end = tensor.end
    return end


def _read_data(stream: BinaryIO, header: _Header, name: str) -> bytearray:
    """The data section in one writable buffer (the arrays are views of it), after the header said its size."""
    buffer = bytearray(header.data_length)
    view, got = memoryview(buffer), 0
    try:
        while got < len(buffer):
            if hasattr(stream, "readinto"):
                count = stream.readinto(view[got:])
            else:
                chunk = stream.read(len(buffer) - got)
                view[got : got + len(chunk)] = chunk
                count = len(chunk)
            if not count:
                break
            got += count
        extra = stream.read(1)
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read the checkpoint ({exc.strerror or exc})") from None
    start = 8 + header.header_length
    require(
        got == len(buffer),
        name,
        f"damaged checkpoint (it ends at byte {start + got:,}; its header says {start + len(buffer):,})",
    )
    require(not extra, name, f"damaged checkpoint (bytes after the last array, from byte {start + got:,})")
    return buffer


def _decode_strings(key: str, data: np.ndarray, offsets: np.ndarray, name: str) -> list[str]:
    where = f"damaged checkpoint (string table {key!r}"
    require(data.ndim == 1 and data.dtype == np.uint8, name, f"{where}: its data is not a row of bytes)")
    require(
        offsets.ndim == 1 and offsets.dtype == np.int64 and len(offsets) >= 1,
        name,
        f"{where}: its offsets are not a row of int64)",
    )
    require(offsets[0] == 0, name, f"{where}: its offsets start at {int(offsets[0])}, not 0)")
    require(offsets[-1] == len(data), name, f"{where}: its offsets end at {int(offsets[-1])}, its data at {len(data)})")
    lengths = np.diff(offsets)
    require(not len(lengths) or lengths.min() >= 0, name, f"{where}: its offsets go backwards)")
    longest = int(lengths.max()) if len(lengths) else 0
    require(
        longest <= MAX_STRING_BYTES,
        name,
        f"{where}: a string of {longest:,} bytes, more than the {MAX_STRING_BYTES:,} allowed)",
    )
    raw = data.tobytes()
    bounds = offsets.tolist()
    try:
        return [raw[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(len(bounds) - 1)]
    except UnicodeDecodeError:
        bad = next(i for i in range(len(bounds) - 1) if not _is_utf8(raw[bounds[i] : bounds[i + 1]]))
        raise CheckpointError(f"{name}: {where}: entry {bad} is not valid UTF-8)") from None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _header_of(source: CheckpointSource, name: str) -> _Header:
    limit = checkpoint_size_limit()
    with _opened(source, name) as stream:
        start = stream.tell() if stream.seekable() else None
        header = _parse_header(stream, name, limit)
        if start is not None:
            stream.seek(start)
    return header


def checkpoint_kind(source: CheckpointSource) -> str:
    """The model kind a checkpoint holds, read from its header alone (an open file is left where it was)."""
    if isinstance(source, Checkpoint):
        return source.kind
    return _header_of(source, checkpoint_name(source)).kind


def read_checkpoint(source: CheckpointSource, kind: str | None = None, max_size: int | None = None) -> Checkpoint:
    """A checkpoint read from a path, bytes or an open binary file and checked (see the module
    docstring); raises CheckpointError naming the file for anything else, or for another `kind`."""
    if isinstance(source, Checkpoint):
        checkpoint = source
    else:
        name = checkpoint_name(source)
        with _opened(source, name) as stream:
            header = _parse_header(stream, name, checkpoint_size_limit(max_size))
            buffer = _read_data(stream, header, name)
        try:
            config = json.loads(header.config_text)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{name}: damaged checkpoint (its settings are not JSON)") from None
        require(isinstance(config, dict), name, "damaged checkpoint (its settings are not a JSON object)")
        arrays = {}
        for tensor in header.tensors:
            count = math.prod(tensor.shape)
            array = np.frombuffer(buffer, tensor.dtype, count, tensor.begin).reshape(tensor.shape)
            arrays[tensor.name] = array if array.flags.aligned else array.copy()
        strings = _string_tables(arrays, name)
        checkpoint = Checkpoint(name, header.kind, header.version, config, arrays, strings)
    require(
        kind is None or checkpoint.kind == kind, checkpoint.name, f"holds a {checkpoint.kind!r} model, not {kind!r}"
    )
    return checkpoint


def _string_tables(arrays: dict[str, np.ndarray], name: str) -> dict[str, list[str]]:
    keys = {k.removeprefix(_STRINGS).rsplit(".", 1)[0] for k in arrays if k.startswith(_STRINGS)}
    strings = {}
    for key in sorted(keys):
        data, offsets = arrays.pop(f"{_STRINGS}{key}.data", None), arrays.pop(f"{_STRINGS}{key}.offsets", None)
        require(
            data is not None and offsets is not None,
            name,
            f"damaged checkpoint (string table {key!r} lacks its {'data' if data is None else 'offsets'})",
        )
        strings[key] = _decode_strings(key, data, offsets, name)
    return strings


def load_checkpoint(
    source: CheckpointSource, kind: str | None = None, max_size: int | None = None
) -> tuple[dict, dict[str, np.ndarray], dict[str, list[str]]]:
    """(config, arrays, strings) of a checkpoint; raises CheckpointError for anything else."""
    checkpoint = read_checkpoint(source, kind, max_size)
    return checkpoint.config, checkpoint.arrays, checkpoint.strings
