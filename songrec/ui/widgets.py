"""What several pages draw the same way: the page header, the sidebar, tinted tables and settings forms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st

from songrec.settings import SettingSpec
from songrec.ui.datasets import corpus, dataset
from songrec.ui.models import models
from songrec.ui.training import train_job

HIT_COLOUR = "background-color: rgba(29, 185, 84, 0.18)"
SLIDER_SPAN = 1.0
"""A float setting whose whole range is at most this wide (a share, a dropout) gets a slider, others a number box."""


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


def sidebar() -> None:
    """Always visible: the loaded dataset, the fitted models and a running or waiting training job."""
    ref, data = dataset(), corpus()
    with st.container():
        st.markdown("**Dataset**")
        st.markdown(f"{ref.name}  \n{data.n_playlists:,} playlists · {data.n_tracks:,} tracks")
        st.markdown("**Models**")
        entries = list(models().values())
        if not entries:
            st.caption("None fitted yet — see Train.")
        for entry in entries:
            st.markdown(f"- {entry.describe()}")
        job = train_job()
        if job is not None and job.running:
            st.progress(job.fraction, text=f"Training the neural model — {job.describe()}")


def marked(frame, column: str | None, mark: str = "✓", formats: dict | None = None, checks: Sequence[str] = ()):
    """A styled table: rows with a true `column` tinted green and that column shown as a ✓ mark.

    `formats` ({column: "{:.4f}"}) format numbers; a missing value shows as "–". `checks` name more
    true/false columns shown as ✓ marks, without a tint.
    """
    frame = frame.reset_index(drop=True)
    flags = frame[column].astype(bool).to_numpy() if column else np.zeros(len(frame), bool)
    shown = frame.assign(**{column: [mark if f else "" for f in flags]}) if column else frame
    shown = shown.assign(**{c: [mark if f else "" for f in frame[c].astype(bool)] for c in checks if c in frame})
    styler = shown.style.apply(lambda row: [HIT_COLOUR if flags[row.name] else ""] * len(row), axis=1)
    return styler.format(formats or {}, na_rep="–")


def percent(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def _help(spec: SettingSpec) -> str:
    text = spec.help[:1].upper() + spec.help[1:]
    return f"{text} ({spec.allowed()}; default {spec.default})."


def _clamped(spec: SettingSpec, value: Any) -> Any:
    """The saved value as this setting's type and inside its range (the range may have narrowed since)."""
    try:
        value = spec.kind(value)
    except (TypeError, ValueError):
        value = spec.default
    if spec.low is not None:
        value = max(value, spec.kind(spec.low))
    if spec.high is not None:
        value = min(value, spec.kind(spec.high))
    return value


def setting_widget(spec: SettingSpec, value: Any, key: str) -> Any:
    """One widget for one setting, drawn where the caller is (a column): checkbox, selectbox, slider or number box.

    Labels, help, range and step come from the spec; a setting that spans orders of magnitude (`log`)
    is shown in scientific notation.
    """
    help_text = _help(spec)
    if spec.kind is bool:
        return st.checkbox(spec.label, value=bool(value), help=help_text, key=key)
    if spec.choices:
        choices = list(spec.choices)
        index = choices.index(value) if value in choices else 0
        return st.selectbox(spec.label, choices, index=index, help=help_text, key=key)
    if spec.kind is str:
        return st.text_input(spec.label, value=str(value), help=help_text, key=key)
    value = _clamped(spec, value)
    low = None if spec.low is None else spec.kind(spec.low)
    high = None if spec.high is None else spec.kind(spec.high)
    step = None if spec.step is None else spec.kind(spec.step)
    if spec.kind is float and not spec.log and low is not None and high is not None and high - low <= SLIDER_SPAN:
        return st.slider(spec.label, low, high, value, step=step or 0.01, help=help_text, key=key)
    if spec.kind is int:
        return int(st.number_input(spec.label, low, high, value, step=step or 1, help=help_text, key=key))
    number_format = "%.1e" if spec.log else None
    chosen = st.number_input(spec.label, low, high, value, step=step, format=number_format, help=help_text, key=key)
    return float(chosen)


def settings_form(
    specs: Sequence[SettingSpec], saved: Mapping[str, Any] | None = None, columns: int = 4, key: str = "settings"
) -> dict[str, Any]:
    """A widget per setting, `columns` to a row (inside the caller's st.form, or live); returns {name: value}.

    `saved` holds the values to start from (a user's last choice); settings missing there start at
    their defaults. The values come back as the settings' own types, ready for `Settings.build`.
    """
    saved = saved or {}
    values: dict[str, Any] = {}
    for start in range(0, len(specs), columns):
        row = st.columns(columns)
        for column, spec in zip(row, specs[start : start + columns], strict=False):
            with column:
                values[spec.name] = setting_widget(spec, saved.get(spec.name, spec.default), f"{key}.{spec.name}")
    return values
