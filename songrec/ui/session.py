"""This browser's server-side session (see `songrec.ui.registry`), found by the token in the page's URL.

The first visit makes a session and puts `?session=TOKEN` in the URL; a reload or a second tab of
the same link finds the same session. The registry and the training queue are shared by every user
of this server (`st.cache_resource`); one user's token never reaches another user's session.

Limits, from the environment: SONGREC_MAX_SESSIONS (default 16 sessions kept), SONGREC_SESSION_IDLE_HOURS
(default 2: an unopened session is dropped after that), SONGREC_MAX_TRAININGS (default 1 training at once;
later ones wait in line).
"""

from __future__ import annotations

import os

import streamlit as st

from songrec.ui.jobs import TrainingQueue
from songrec.ui.registry import SessionRegistry, UserSession

QUERY_KEY = "session"
STATE_KEY = "user_session"


def _env_number(name: str, default: float, kind: type = int) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be more than 0, not {text!r}")
    return value


@st.cache_resource(show_spinner=False)
def registry() -> SessionRegistry:
    return SessionRegistry(
        max_sessions=int(_env_number("SONGREC_MAX_SESSIONS", 16)),
        idle_seconds=3600 * _env_number("SONGREC_SESSION_IDLE_HOURS", 2.0, float),
    )


@st.cache_resource(show_spinner=False)
def training_queue() -> TrainingQueue:
    return TrainingQueue(int(_env_number("SONGREC_MAX_TRAININGS", 1)))


def current() -> UserSession:
    """This user's session: the one named in the URL, else the one this tab already had, else a new one.

    The token goes (back) into the URL on every run, because page navigation may drop query params.
    """
    token = st.query_params.get(QUERY_KEY)
    mine: UserSession | None = st.session_state.get(STATE_KEY)
    if mine is not None and (token is None or token == mine.token):
        mine = registry().get(mine.token)  # None once dropped (idle or over the limit)
    else:
        mine = None
    user = mine or registry().open(token)
    st.session_state[STATE_KEY] = user
    if token != user.token:
        st.query_params[QUERY_KEY] = user.token
    return user
