"""The error of a user's mistake, as opposed to a bug.

`UserError` is what a wrong setting, an unreadable or foreign file, or too little data raises: the
CLI prints its message on one line (the app shows it), while any other exception is a bug and keeps
its traceback. The project's own error types (SettingError, MPDFormatError, CheckpointError,
SparseFormatError, DatasetError) derive from it. No imports: every module may use it.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what was asked or given, in words for the user (a ValueError, so callers that
    catch ValueError still catch it)."""
