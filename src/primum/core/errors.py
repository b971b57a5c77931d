"""The one base of every error a user can cause and fix (a wrong file, an unknown id, a refused action).

Front ends catch :class:`UserError` alone and print it the same way: each line of
:meth:`UserError.lines` after the error's ``label``, exit code 2 in the CLI. Anything
else that escapes a use case is an internal error (a bug or a broken dependency), not
the user's to fix.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; ``str(self)`` says what is wrong and how to fix it."""

    label = "error"  # what a front end prints before the message, e.g. "policy error"

    def lines(self) -> list[str]:
        """The message as printed, one entry per problem."""
        return [str(self)]


class NotFound(UserError, LookupError):
    """An id, service, environment or gate the user named does not exist."""


class NotAllowed(UserError):
    """The user asked for something the rules refuse (separation of duties, a finished release, ...)."""
