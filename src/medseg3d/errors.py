"""Errors a user can cause.

Every error that bad input can trigger is a :class:`MedsegError`. The command line prints its message as one
line (``medseg3d: error: ...``) and exits with status 2, without a traceback. Messages say what is wrong and
what to do about it.
"""

from __future__ import annotations


class MedsegError(ValueError):
    """Base class of user-facing errors: the message is one line saying what is wrong and what to do."""


class InputError(MedsegError):
    """A file, folder or array given by the user is missing, unreadable or inconsistent."""


class ModelError(MedsegError):
    """A model file is missing, unreadable, or does not fit the data it is applied to."""
