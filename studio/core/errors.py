"""Errors meant for the person using the studio.

Anything raised as a `StudioError` carries a message written for a user: the UI shows it as a toast and the
API returns it as the error text. Anything else is a bug and is logged with its traceback.
"""


class StudioError(Exception):
    """A problem the user can act on; `str(error)` is the whole message."""


class InvalidRequest(StudioError):
    """The request's values are out of range, unknown or inconsistent."""


class ModelUnavailable(StudioError):
    """A model could not be found or loaded (offline, missing file, broken checkpoint)."""


class PresetError(StudioError):
    """A preset file is malformed; the message names the file and the entry."""


class ResultNotSaved(StudioError):
    """The outputs folder could not take a result (full, read-only, gone): the result is still shown."""


class RunCancelled(StudioError):
    """The user pressed Stop; raised from inside the denoising loop to end it at once."""

    def __init__(self, message: str = "Stopped.") -> None:
        super().__init__(message)


class OutOfMemory(StudioError):
    """A run ran out of memory twice (once more in a lower-memory mode); the message says what to change."""
