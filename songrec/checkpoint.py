"""One safe file format for every model: safetensors arrays plus JSON metadata.

Nothing is unpickled: a file that is not a songrec checkpoint (a pickle, a zip, text) is refused
with a clear error before any of its content is interpreted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

FORMAT = "songrec-checkpoint"
VERSION = 1
_SEPARATOR = "\n"


class CheckpointError(ValueError):
    """A file that is not a songrec checkpoint, or one for another model."""


def _encode_strings(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def _decode_strings(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = data.tobytes()
    return [raw[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]


def save_checkpoint(
    path: str | os.PathLike,
    kind: str,
    config: dict,
    arrays: dict[str, np.ndarray],
    strings: dict[str, list[str]] | None = None,
) -> None:
    """Write arrays (numeric) and string lists under a typed header naming the model kind."""
    tensors = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    for name, values in (strings or {}).items():
        tensors[f"__str__.{name}.data"], tensors[f"__str__.{name}.offsets"] = _encode_strings(list(values))
    metadata = {"format": FORMAT, "version": str(VERSION), "kind": kind, "config": json.dumps(config)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def _read_metadata(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a songrec checkpoint (file too short)")
        size = int.from_bytes(head, "little")
        if size <= 0 or size > 100_000_000:
            raise CheckpointError(f"{path}: not a songrec checkpoint (no safetensors header; pickles are never loaded)")
        header = handle.read(size)
    try:
        metadata = json.loads(header).get("__metadata__") or {}
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a songrec checkpoint (unreadable header)") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise CheckpointError(f"{path}: not a songrec checkpoint (format is {found!r})")
    if not all(isinstance(metadata.get(key), str) for key in ("kind", "config")):
        raise CheckpointError(f"{path}: damaged checkpoint (its header names no model kind or settings)")
    return metadata


def checkpoint_kind(path: str | os.PathLike) -> str:
    """The model kind a checkpoint holds, read from its header alone."""
    return _read_metadata(Path(path))["kind"]


def load_checkpoint(
    path: str | os.PathLike, kind: str | None = None
) -> tuple[dict, dict[str, np.ndarray], dict[str, list[str]]]:
    """(config, arrays, strings) of a checkpoint; raises CheckpointError for anything else."""
    path = Path(path)
    metadata = _read_metadata(path)
    if kind is not None and metadata["kind"] != kind:
        raise CheckpointError(f"{path}: holds a {metadata['kind']!r} model, not {kind!r}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc})") from exc
    strings: dict[str, list[str]] = {}
    for name in [n for n in tensors if n.startswith("__str__.") and n.endswith(".data")]:
        key = name.removeprefix("__str__.").removesuffix(".data")
        strings[key] = _decode_strings(tensors.pop(name), tensors.pop(f"__str__.{key}.offsets"))
    return json.loads(metadata["config"]), tensors, strings
