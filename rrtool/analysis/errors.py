"""The one exception type of the analysis package: a message for the user, one line, exit code 2."""

from __future__ import annotations


class AnalysisError(Exception):
    """Bad input to an analysis command (a range, a name, an SQL query...); the message is one line."""
