"""What rrtool needs from the host it runs on: where to cache files.

The guest builder, the native counter's fallback build and the SQL shell's
history each found the cache directory their own way; it lives here so that
one environment variable means the same thing everywhere.

Why a private top-level module rather than, say, ``rrtool/schemas/paths.py``:
the packages are layered ``schemas <- machine <- board <- recorder, player <-
cli`` with ``analysis`` on ``schemas`` only, and ``guest`` (the SDK builder)
beside them. The users sit in ``machine``, ``analysis`` and ``guest``, so the
helper must be importable from all of them; a module under ``rrtool/`` itself
that imports nothing but the standard library belongs to no layer and cannot
create a cycle whoever imports it. ``schemas`` would also have satisfied the
layering, but it is the trace format, and host paths are not part of that
contract. Importing this module costs no more than ``import rrtool``, which
stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Root of rrtool's cache: ``$RRTOOL_CACHE``, else ``$XDG_CACHE_HOME/rrtool``, else ``~/.cache/rrtool``.

    Empty variables count as unset (the XDG Base Directory rule). The
    directory is not created: callers make the subdirectory they write to.
    """
    explicit = os.environ.get("RRTOOL_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "rrtool"
