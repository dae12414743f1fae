"""Users' sessions kept on the server, so a page reload or a second tab of the same link finds them again.

A browser tab's Streamlit session ends on reload; what a user made (the dataset, fitted models, a
running training job, the settings they chose) lives here instead, under an unguessable token the
browser keeps in its URL (`?session=...`). Memory stays bounded: at most `max_sessions` sessions,
the least recently used dropped first, and a session nobody opened for `idle_seconds` is dropped.
A session whose training is still running or queued is kept while others can go, and its job is
stopped when the session is dropped all the same, so no orphaned job keeps a core busy.

No Streamlit here (the app's glue is `songrec.ui.session`), so the limits are tested with a fake clock.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,64}")
"""What `secrets.token_urlsafe(24)` makes (32 characters); anything else in a URL is not a session."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(eq=False)
class UserSession:
    """One user's things: only this user's token reaches them."""

    token: str
    last_seen: float
    dataset: Any = None
    """(DatasetRef, Corpus, LoadReport) of the data the user looks at; None until the first page loads it."""
    models: dict[str, Any] = field(default_factory=dict)
    """Fitted, trained or uploaded models by label (`songrec.ui.models.ModelEntry`)."""
    train_job: Any = None
    """The last training job (`songrec.ui.jobs.FitJob`), running, queued or ended."""
    replay_job: Any = None
    """The Train page's notebook replay (`songrec.ui.notebook`), a job on the same queue as training."""
    collected_job: Any = None
    """The ended job whose model was already added to `models` (collected once, whichever tab sees it first)."""
    settings: dict[str, dict] = field(default_factory=dict)
    """The values last chosen in each form, by form name."""
    results: dict[str, Any] = field(default_factory=dict)
    """What pages computed and show again: the evaluation tables, genre scores, custom playlists."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    """Held while changing this session from one of its tabs (two tabs must not start two trainings)."""

    @property
    def busy(self) -> bool:
        """A training job (or notebook replay) of this session is running or waiting for a slot."""
        return any(job is not None and job.running for job in (self.train_job, self.replay_job))

    def close(self) -> None:
        """Stop what still runs for this session (it is being dropped)."""
        for job in (self.train_job, self.replay_job):
            if job is not None and job.running:
                job.stop()


class SessionRegistry:
    """Sessions by token: an LRU of at most `max_sessions`, with idle expiry after `idle_seconds`."""

    def __init__(
        self, max_sessions: int = 16, idle_seconds: float = 2 * 3600, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be 1 or more, not {max_sessions}")
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._sessions: OrderedDict[str, UserSession] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, token: object) -> bool:
        return token in self._sessions

    def open(self, token: str | None) -> UserSession:
        """The session for `token`, or a new one under a fresh token when it is unknown, expired or malformed.

        A token the server did not make is never adopted: a link cannot choose someone's session id.
        """
        with self._lock:
            now = self.clock()
            self._expire(now)
            found = self._sessions.get(token) if token and TOKEN_PATTERN.fullmatch(token) else None
            if found is None:
                found = UserSession(new_token(), now)
                self._sessions[found.token] = found
                self._evict(keep=found)
            found.last_seen = now
            self._sessions.move_to_end(found.token)
            return found

    def get(self, token: str) -> UserSession | None:
        """The live session for a token (and it counts as used), or None."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            found = self._sessions.get(token)
            if found is not None:
                found.last_seen = now
                self._sessions.move_to_end(token)
            return found

    def _expire(self, now: float) -> None:
        for token, user in list(self._sessions.items()):
            if user.busy:  # its job counts as use, so the idle time starts when the job ends
                user.last_seen = now
            elif now - user.last_seen > self.idle_seconds:
                del self._sessions[token]
                user.close()

    def _evict(self, keep: UserSession) -> None:
        """Drop the least recently used sessions over the limit, idle ones (no job) before busy ones."""
        while len(self._sessions) > self.max_sessions:
            candidates = [u for u in self._sessions.values() if u is not keep]
            victim = next((u for u in candidates if not u.busy), candidates[0])
            del self._sessions[victim.token]
            victim.close()
