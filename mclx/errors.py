"""One exception hierarchy: every error a user can cause carries a one-line message.

The CLI maps ``UsageError`` (and subclasses) to exit code 2 and ``Interrupted`` to 130;
anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """``exc`` as one line of at most 300 characters (its type when it has no message): a reason
    recorded in a store row or ending a command must not carry a library's multi-line dump."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class MclxError(Exception):
    """Base class: ``str(err)`` is the message shown to the user."""

    exit_code = 1


class UsageError(MclxError):
    """Bad flag, bad input path, unwritable output: nothing was done (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """Bad configuration key, value or type (exit 2)."""


class StoreError(UsageError):
    """An embedding store that cannot be read, resumed or merged (exit 2)."""


class WeightsError(UsageError):
    """A checkpoint or bundled weight file that is missing, malformed or fails its sha256 (exit 2)."""


class DecodeError(MclxError):
    """One input file cannot be decoded; recorded in the store, never fatal by itself."""


class TrainingDiverged(MclxError):
    """The loss or the weights became NaN/inf; no checkpoint holds them (exit 1)."""


class Interrupted(MclxError):
    """SIGINT / SIGTERM: the run stopped cleanly and can be resumed (exit 130)."""

    exit_code = 130
