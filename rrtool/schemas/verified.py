"""Remembering which trace files passed a full check, so that an unchanged file is not checked twice.

The key is the file's device, inode, size, modification time and change time
(``st_ctime_ns``), the way git's index trusts a file it has hashed before: any
write to the file, or a rename onto its name, gives it a new change time, and
user space cannot set a change time back (``touch`` sets only the modification
time). A marker file per key sits in the cache directory (``rrtool._host``);
failing to read or write it only costs a check, never a wrong answer about a
changed file. ``RRTOOL_VERIFY_CACHE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rrtool._host import cache_dir

__all__ = ["file_identity", "remember_verified", "was_verified"]


def file_identity(path: Path) -> str | None:
    """The file's path, device, inode, size, modification and change time; None when it cannot be looked at.

    Taken when a trace is opened and again after its check: a check is remembered only under the identity
    the file had before it started, and only if the file still has it, so a write during the check is never
    remembered as checked.
    """
    if os.environ.get("RRTOOL_VERIFY_CACHE") == "0":
        return None
    try:
        st = path.stat()
        where = path.resolve()
    except (OSError, RuntimeError):
        return None
    return f"{where}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


def _marker(identity: str) -> Path:
    return cache_dir() / "verified" / hashlib.sha256(identity.encode()).hexdigest()


def was_verified(identity: str | None) -> bool:
    """True when a file with exactly this identity passed a full check before."""
    return identity is not None and _marker(identity).is_file()


def remember_verified(identity: str | None) -> None:
    """Note that the file with this identity passed a full check; best effort."""
    if identity is None:
        return
    marker = _marker(identity)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
