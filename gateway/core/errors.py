"""The base of every error that is the user's to fix.

A `UserError` says what is wrong, and where, in its own words: the command line prints its message
(one line; a config error one line per issue) and exits 1, never a traceback. Each room derives its
user-facing errors from it, so the command line catches this one class, not a list of names.
An error that means a bug stays an ordinary exception, and shows its traceback.

This module imports nothing, so every room, hardware included, can derive from it.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix (a file, a device, an argument, a refused request); the message
    alone says what and where."""


class UnsupportedHardwareError(UserError):
    """The config asks for hardware this build cannot drive (a link's codec missing from it)."""
