"""The guest's `/`: a host directory it cannot leave, with a copy-on-write overlay unless asked to write back.

Every guest path is resolved here, one component at a time, by rrtool rather
than by the host kernel: `..` stops at the root, and each symlink (absolute
ones from the root, relative ones from where they sit) is followed inside the
root with Linux's limit of 40. The result is a normalised guest path with no
symlink left in it, which maps to exactly one host file under the root (or
under the overlay), so no spelling of a path reaches anything outside.

Without `writeback` the root is never written: the first write to a file
copies it into a private overlay directory, deletions are remembered as
whiteouts, and lookups see the overlay first. Directories listed merge both.
With `writeback` the operations go to the root itself.

A few virtual paths are the platform's own (`/dev/null`, `/dev/zero`,
`/dev/urandom`, `/dev/std*`, `/proc/self/exe`); every other `/dev` and
`/proc` entry is absent, whatever the root holds there.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

#: Linux's limit on symlinks followed in one lookup (ELOOP beyond it).
MAX_SYMLINKS = 40
#: Guest paths the platform provides itself, and what each is.
VIRTUAL_FILES = {
    "/dev/null": "null",
    "/dev/zero": "zero",
    "/dev/urandom": "urandom",
    "/dev/random": "urandom",
    "/dev/stdin": "stdin",
    "/dev/stdout": "stdout",
    "/dev/stderr": "stderr",
    "/proc/self/exe": "exe",
}
#: Virtual directories (they list only the virtual files below them).
VIRTUAL_DIRS = frozenset({"/dev", "/proc", "/proc/self"})


def _err(code: int, path: str = "") -> OSError:
    return OSError(code, os.strerror(code), path)


class Root:
    """One guest root: lookups, and the host location of every guest path (overlay first)."""

    def __init__(self, root: Path, *, writeback: bool = False) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"{root}: not a directory")
        self.writeback = writeback
        self._overlay_dir: tempfile.TemporaryDirectory[str] | None = None
        self.whiteouts: set[str] = set()

    # -- where things are ------------------------------------------------------
    @property
    def overlay(self) -> Path | None:
        return None if self._overlay_dir is None else Path(self._overlay_dir.name)

    def close(self) -> None:
        """Drop the overlay (what the guest wrote without writeback is discarded)."""
        if self._overlay_dir is not None:
            self._overlay_dir.cleanup()
            self._overlay_dir = None

    @staticmethod
    def _rel(guest: str) -> str:
        return guest.lstrip("/")

    def _whited_out(self, guest: str) -> bool:
        parts = guest.strip("/").split("/")
        return any("/" + "/".join(parts[: i + 1]) in self.whiteouts for i in range(len(parts)))

    def locate(self, guest: str) -> Path | None:
        """The host path holding `guest` now (overlay, then root), or None when it does not exist."""
        rel = self._rel(guest)
        if not rel:
            return self.root
        if self.overlay is not None:
            upper = self.overlay / rel
            if os.path.lexists(upper):
                return upper
        if self._whited_out(guest):
            return None
        lower = self.root / rel
        return lower if os.path.lexists(lower) else None

    def lstat(self, guest: str) -> os.stat_result:
        if guest in VIRTUAL_DIRS:
            return os.lstat(self.root)  # shown as a directory like the root
        host = self.locate(guest)
        if host is None:
            raise _err(errno.ENOENT, guest)
        return os.lstat(host)

    # -- lookups -------------------------------------------------------------
    def resolve(self, path: str, cwd: str, *, follow: bool = True) -> str:
        """The normalised guest path `path` names, with every symlink followed (the last only if `follow`).

        Raises OSError (ENOENT for a missing directory on the way, ENOTDIR, ELOOP, ENAMETOOLONG). The last
        component need not exist (a file about to be created).
        """
        if not path:
            raise _err(errno.ENOENT)
        if len(path) >= 4096:
            raise _err(errno.ENAMETOOLONG)
        todo = [c for c in (path if path.startswith("/") else cwd + "/" + path).split("/") if c]
        todo.reverse()  # a stack: the next component last
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            if len(part) > 255:
                raise _err(errno.ENAMETOOLONG)
            guest = "/" + "/".join([*done, part])
            last = not todo
            if guest in VIRTUAL_FILES or guest in VIRTUAL_DIRS:
                done.append(part)
                continue
            if guest.startswith(("/dev/", "/proc/")):
                if last:
                    done.append(part)
                    continue  # absent (the caller's lookup reports ENOENT), but may be named
                raise _err(errno.ENOENT, guest)
            try:
                st = self.lstat(guest)
            except FileNotFoundError:
                if last:
                    done.append(part)
                    continue
                raise _err(errno.ENOENT, guest) from None
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise _err(errno.ELOOP, guest)
                host = self.locate(guest)
                assert host is not None
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                todo.extend(reversed([c for c in target.split("/") if c]))
                if not target:
                    raise _err(errno.ENOENT, guest)
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise _err(errno.ENOTDIR, guest)
            done.append(part)
        return "/" + "/".join(done)

    # -- changes -------------------------------------------------------------
    def _ensure_overlay(self) -> Path:
        if self._overlay_dir is None:
            self._overlay_dir = tempfile.TemporaryDirectory(prefix="rrtool-overlay-")
        return Path(self._overlay_dir.name)

    def writable(self, guest: str, *, copy: bool = True) -> Path:
        """The host path to change `guest` at: the root itself with writeback, else its overlay copy.

        The overlay copy of an existing file is made on the first write (`copy`); its parent directories
        are created in the overlay as needed. The path's whiteout, if any, is lifted.
        """
        rel = self._rel(guest)
        if self.writeback:
            return self.root / rel
        upper = self._ensure_overlay() / rel
        if not os.path.lexists(upper):
            upper.parent.mkdir(parents=True, exist_ok=True)
            lower = self.locate(guest)
            if copy and lower is not None:
                st = os.lstat(lower)
                if stat.S_ISDIR(st.st_mode):
                    upper.mkdir()
                    os.chmod(upper, stat.S_IMODE(st.st_mode))
                elif stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(lower), upper)
                else:
                    shutil.copy2(lower, upper, follow_symlinks=False)
        self.whiteouts.discard(guest)
        return upper

    def remove(self, guest: str, *, directory: bool) -> None:
        """unlink or rmdir `guest` (which must exist); without writeback the root keeps it, hidden."""
        host = self.locate(guest)
        if host is None:
            raise _err(errno.ENOENT, guest)
        if directory:
            if self.listdir(guest):
                raise _err(errno.ENOTEMPTY, guest)
            if not stat.S_ISDIR(os.lstat(host).st_mode):
                raise _err(errno.ENOTDIR, guest)
        elif stat.S_ISDIR(os.lstat(host).st_mode):
            raise _err(errno.EISDIR, guest)
        if self.writeback:
            (os.rmdir if directory else os.unlink)(host)
            return
        overlay = self.overlay
        if overlay is not None and os.path.lexists(overlay / self._rel(guest)):
            upper = overlay / self._rel(guest)
            if directory:
                shutil.rmtree(upper)
            else:
                os.unlink(upper)
        if os.path.lexists(self.root / self._rel(guest)):
            self.whiteouts.add(guest)

    def listdir(self, guest: str) -> list[str]:
        """Names in a directory: the overlay's and the root's, without whiteouts (virtual dirs: their files)."""
        if guest in VIRTUAL_DIRS:
            prefix = guest.rstrip("/") + "/"
            virtual = {p[len(prefix) :].split("/")[0] for p in (*VIRTUAL_FILES, *VIRTUAL_DIRS) if p.startswith(prefix)}
            return sorted(virtual)
        # The host's own order (readdir's), root first, then names only the overlay has: a program that
        # lists a directory (find) sees what it would see natively.
        names: dict[str, None] = {}
        rel = self._rel(guest)
        if not self._whited_out(guest) and os.path.isdir(self.root / rel):
            names.update(dict.fromkeys(os.listdir(self.root / rel)))
        if self.overlay is not None and os.path.isdir(self.overlay / rel):
            names.update(dict.fromkeys(os.listdir(self.overlay / rel)))
        prefix = "/" if guest == "/" else guest + "/"
        return [n for n in names if prefix + n not in self.whiteouts]
