"""Errors a user can cause: printed by the CLI as one line, exit code 2."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in the user's input (config, path, data). The message says how to fix it.

    A ``ValueError``, so Python callers that catch bad arguments the usual way catch it too.
    """
