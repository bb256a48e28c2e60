"""What rrtool needs from the host it runs on: where to cache files and which C compiler to run.

The guest builder, the native counter's fallback build and the SQL shell's
history each found the cache directory their own way, and the first two each
looked for a compiler; both answers live here so that one environment
variable means the same thing everywhere.

Why a private top-level module rather than, say, ``rrtool/schemas/paths.py``:
the packages are layered ``schemas <- machine <- board <- recorder, player <-
cli`` with ``analysis`` on ``schemas`` only, and ``guest`` (the SDK builder)
beside them. The users sit in ``machine``, ``analysis`` and ``guest``, so the
helper must be importable from all of them; a module under ``rrtool/`` itself
that imports nothing but the standard library belongs to no layer and cannot
create a cycle whoever imports it. ``schemas`` would also have satisfied the
layering, but it is the trace format, and host paths and compilers are not
part of that contract. Importing this module costs no more than
``import rrtool``, which stays cheap.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["CompilerNotFoundError", "cache_dir", "find_c_compiler"]


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


class CompilerNotFoundError(Exception):
    """No usable C compiler; ``str()`` is a one-line reason with the fix."""


def find_c_compiler(purpose: str) -> str:
    """Absolute path of the C compiler to run: ``$RRTOOL_CC`` if set, else gcc, else cc on PATH.

    The override exists for hosts where gcc has another name or location
    (e.g. ``x86_64-linux-gnu-gcc`` on a non-x86 host); it is looked up on PATH
    like the defaults, so a name or a path both work, and a wrong one is
    reported rather than silently replaced by gcc. ``purpose`` completes the
    error message: "``<purpose>`` needs a C compiler".
    """
    hint = f"{purpose} needs a C compiler (apt-get install gcc)"
    override = os.environ.get("RRTOOL_CC")
    if override:
        found = shutil.which(override)
        if found is None:
            raise CompilerNotFoundError(f"C compiler {override!r} (from RRTOOL_CC) not found: {hint}")
        return found
    found = shutil.which("gcc") or shutil.which("cc")
    if found is None:
        raise CompilerNotFoundError(f"gcc not found: {hint}")
    return found
