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

__all__ = ["remember_verified", "was_verified"]


def _marker(path: Path) -> Path | None:
    if os.environ.get("RRTOOL_VERIFY_CACHE") == "0":
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    identity = f"{path.resolve()}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
    return cache_dir() / "verified" / hashlib.sha256(identity.encode()).hexdigest()


def was_verified(path: Path) -> bool:
    """True when this exact file (same identity and change time) passed a full check before."""
    marker = _marker(path)
    return marker is not None and marker.is_file()


def remember_verified(path: Path) -> None:
    """Note that `path`, as it is now, passed a full check; best effort."""
    marker = _marker(path)
    if marker is None:
        return
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
