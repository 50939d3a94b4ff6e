"""Errors a user can cause: printed by the CLI as one line, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, path, data). The message says how to fix it."""
