"""Typed settings: each field carries its help text and allowed range, and everything else comes from that.

The CLI options (`add_options`), the app's forms (`specs`), `--param key=value` parsing and the
validation of every value (`Settings.__post_init__`) all read the same field metadata, so a setting
is described once and an out-of-range value gets the same message from the CLI, the library and
the app. No torch or Streamlit here: forms and `--help` are built without loading a model.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from songrec.errors import UserError

_KEY = "songrec"


class SettingError(UserError):
    """A setting that is unknown, of the wrong type or outside its allowed range."""


@dataclass(frozen=True)
class SettingSpec:
    """What a form or a CLI option needs to know about one setting."""

    name: str
    kind: type
    """int, float, bool or str."""
    default: Any
    help: str
    label: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    step: float | None = None
    """A sensible increment for a number input (None: the widget's own)."""
    log: bool = False
    """Values span orders of magnitude (a learning rate): forms show them in scientific notation."""

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """The allowed values in words: "1 to 4096", "0.0 or more", "one of cpu, cuda"."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.low is not None and self.high is not None:
            return f"from {_number(self.low)} to {_number(self.high)}"
        if self.low is not None:
            return f"{_number(self.low)} or more"
        if self.high is not None:
            return f"at most {_number(self.high)}"
        return "any value"

    def check(self, value: Any, owner: str = "") -> Any:
        """The value converted to this setting's type; SettingError naming the setting and its range."""
        where = f"{owner} setting " if owner else "setting "
        problem = f"{where}{self.name} must be {self.allowed()}"
        given = str(value).strip() if str(value).strip() else repr(value)  # 0 and "0" read the same
        if self.kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in _BOOL_WORDS:
                    raise SettingError(f"{problem}, not {given}")
                return _BOOL_WORDS[lowered]
            if isinstance(value, bool | int) and value in (0, 1):
                return bool(value)
            raise SettingError(f"{problem}, not {given}")
        try:
            converted = self._convert(value)
        except (TypeError, ValueError, OverflowError):
            raise SettingError(f"{problem}, not {given}") from None
        if self.choices and converted not in self.choices:
            raise SettingError(f"{problem}, not {given}")
        if self.kind in (int, float):
            if isinstance(converted, float) and not math.isfinite(converted):
                raise SettingError(f"{problem}, not {given}")
            if (self.low is not None and converted < self.low) or (self.high is not None and converted > self.high):
                raise SettingError(f"{problem}, not {given}")
        return converted

    def described(self) -> str:
        """The help text of its option: "learning rate (from 0.0001 to 1; default 0.01)"."""
        default = "" if self.default is None else f"; default {self.default}"
        return f"{self.help} ({self.allowed()}{default})"

    def option_help(self) -> str:
        """`described()` as argparse takes it: argparse formats help with %, so a literal % is written %%."""
        return self.described().replace("%", "%%")

    def argument(self, text: str) -> Any:
        """A command-line option's value (`type=spec.argument`), converted and checked as `check` does; else an
        argparse error naming the option and its range, "argument --n: must be from 1 to 500, not 0" (exit
        status 2, before any data is read)."""
        try:
            return self.check(text)
        except SettingError:
            raise argparse.ArgumentTypeError(f"must be {self.allowed()}, not {text.strip() or repr(text)}") from None

    def _convert(self, value: Any) -> Any:
        if self.kind is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip().replace("_", "")) if isinstance(value, str) else int(value)
        if self.kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if self.kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        raise TypeError


_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _number(value: float) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:_}" if value >= 100_000 else str(value)


def setting(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[str] = (),
    label: str | None = None,
    step: float | None = None,
    log: bool = False,
) -> Any:
    """A dataclass field with what forms, the CLI and validation need (see `SettingSpec`)."""
    meta = {"help": help, "low": low, "high": high, "choices": tuple(choices), "label": label, "step": step, "log": log}
    return dataclasses.field(default=default, metadata={_KEY: meta})


def _field_kind(cls: type, field: dataclasses.Field) -> type:
    hints = typing.get_type_hints(cls)
    kind = hints.get(field.name, type(field.default))
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind not in (int, float, bool, str):
        raise TypeError(f"{cls.__name__}.{field.name}: settings are int, float, bool or str, not {kind}")
    return kind


def specs(cls: type) -> list[SettingSpec]:
    """The settings of a Settings dataclass, in declaration order."""
    found = []
    for field in dataclasses.fields(cls):
        meta = field.metadata.get(_KEY)
        if meta is None:
            raise TypeError(f"{cls.__name__}.{field.name} is not declared with setting()")
        label = meta["label"] or field.name.replace("_", " ").capitalize()
        found.append(
            SettingSpec(
                field.name,
                _field_kind(cls, field),
                field.default,
                meta["help"],
                label,
                meta["low"],
                meta["high"],
                meta["choices"],
                meta["step"],
                meta["log"],
            )
        )
    return found


@dataclass(frozen=True)
class Settings:
    """Base of every settings dataclass: values are checked against their metadata when made."""

    def __post_init__(self) -> None:
        owner = getattr(self, "owner", "") or type(self).__name__
        for spec in specs(type(self)):
            object.__setattr__(self, spec.name, spec.check(getattr(self, spec.name), owner))

    owner: typing.ClassVar[str] = ""
    """The name messages use for these settings ("neural", "als"); the class name when empty."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def build(cls, params: Mapping[str, Any]) -> Self:
        """Settings from a mapping; an unknown key is an error that lists the known ones."""
        unknown = sorted(set(params) - set(cls.names()))
        if unknown:
            owner = cls.owner or cls.__name__
            raise SettingError(
                f"unknown {owner} setting {', '.join(unknown)}; known: {', '.join(cls.names()) or 'none'}"
            )
        return cls(**params)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


def split_params(classes: Iterable[type[Settings]], params: Mapping[str, Any], owner: str) -> list[Settings]:
    """One instance of each class from the keyword arguments each owns; unknown keys are an error."""
    classes = list(classes)
    known = {name for cls in classes for name in cls.names()}
    unknown = sorted(set(params) - known)
    if unknown:
        raise SettingError(f"unknown {owner} setting {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}")
    return [cls.build({k: v for k, v in params.items() if k in cls.names()}) for cls in classes]


def parse_param(text: str) -> tuple[str, str]:
    """`key=value` (from `--param`) as (key, value text); the model's settings convert the value."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise SettingError(f"--param takes key=value, not {text!r}")
    return key, value.strip()


def coerce(classes: Iterable[type[Settings]], params: Mapping[str, str], owner: str) -> dict[str, Any]:
    """Text values (from `--param`) converted by the type of the setting they name."""
    by_name = {spec.name: spec for cls in classes for spec in specs(cls)}
    unknown = sorted(set(params) - set(by_name))
    if unknown:
        raise SettingError(f"unknown {owner} setting {', '.join(unknown)}; known: {', '.join(by_name) or 'none'}")
    return {name: by_name[name].check(value, owner) for name, value in params.items()}


def add_options(
    parser: argparse.ArgumentParser, classes: Iterable[type[Settings]], title: str, skip: Iterable[str] = ()
) -> argparse._ArgumentGroup:
    """One `--option` per setting (default None: only what is given overrides the defaults)."""
    group = parser.add_argument_group(title)
    skipped = set(skip)
    for cls in classes:
        for spec in specs(cls):
            if spec.name in skipped:
                continue
            skipped.add(spec.name)  # a setting several models share is one option, given to each of them
            metavar = "BOOL" if spec.kind is bool else "{" + ",".join(spec.choices) + "}" if spec.choices else None
            group.add_argument(
                spec.option,
                dest=spec.name,
                type=str,
                default=None,
                metavar=metavar or spec.name.upper(),
                help=spec.option_help(),
            )
    return group


def given_options(args: argparse.Namespace, classes: Iterable[type[Settings]], owner: str) -> dict[str, Any]:
    """The settings given on the command line, converted and checked (SettingError names the option)."""
    found = {}
    for cls in classes:
        for spec in specs(cls):
            value = getattr(args, spec.name, None)
            if value is not None:
                found[spec.name] = spec.check(value, owner)
    return found
