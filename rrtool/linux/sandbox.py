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
        #: Directories made in the overlay that do not merge with the root (whatever the root has there, even
        #: a symlink to a host directory, stays hidden below them).
        self.opaque: set[str] = set()

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

    def _hidden(self, guest: str) -> bool:
        """The root's copy of `guest` is hidden: it or a parent was deleted, or a parent is a directory the
        overlay made afresh (opaque: a new directory, or one moved there by rename)."""
        if not self.whiteouts and not self.opaque:
            return False  # the common case
        # Whichever is less work: test each deleted or opaque path against `guest`, or each of `guest`'s
        # prefixes against the sets. Either way a lookup of a deep path stays linear in its length.
        if len(self.whiteouts) + len(self.opaque) <= guest.count("/"):
            return any(guest == w or guest.startswith(w + "/") for w in self.whiteouts) or any(
                guest.startswith(o + "/") for o in self.opaque
            )
        ends = [*[i for i, c in enumerate(guest) if c == "/"][1:], len(guest)]
        return any(guest[:e] in self.whiteouts for e in ends) or any(guest[:e] in self.opaque for e in ends[:-1])

    def locate(self, guest: str) -> Path | None:
        """The host path holding `guest` now (overlay, then root), or None when it does not exist."""
        rel = self._rel(guest)
        if not rel:
            return self.root
        if self.overlay is not None:
            upper = self.overlay / rel
            if os.path.lexists(upper):
                return upper
        if self._hidden(guest):
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
        # A trailing slash names a directory: the last symlink is followed, and a file there is ENOTDIR.
        must_be_dir = path.endswith("/") and path.strip("/") != ""
        follow = follow or must_be_dir
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
        guest = "/" + "/".join(done)
        if must_be_dir and guest not in VIRTUAL_DIRS:
            try:
                if not stat.S_ISDIR(self.lstat(guest).st_mode):
                    raise _err(errno.ENOTDIR, guest)
            except FileNotFoundError:
                pass  # `mkdir("new/")` names a directory about to be made
        return guest

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
        self.opaque.discard(guest)
        if os.path.lexists(self.root / self._rel(guest)):
            self.whiteouts.add(guest)

    def make_dir(self, guest: str, mode: int) -> None:
        """mkdir: a new directory is empty, so in the overlay it hides whatever the root has under that name."""
        os.mkdir(self.writable(guest, copy=False), mode)
        if not self.writeback:
            self.opaque.add(guest)

    def rename(self, src: str, dst: str) -> None:
        """rename with Linux's type rules; in the overlay a directory moves with all it holds, merged."""
        src_host, dst_host = self.locate(src), self.locate(dst)
        if src_host is None:
            raise _err(errno.ENOENT, src)
        src_dir = stat.S_ISDIR(os.lstat(src_host).st_mode)
        if dst_host is not None:
            dst_dir = stat.S_ISDIR(os.lstat(dst_host).st_mode)
            if src_dir and not dst_dir:
                raise _err(errno.ENOTDIR, dst)
            if dst_dir and not src_dir:
                raise _err(errno.EISDIR, dst)
            if dst_dir and self.listdir(dst):
                raise _err(errno.ENOTEMPTY, dst)
        if self.writeback:
            os.replace(src_host, dst_host or self.root / self._rel(dst))
            return
        if src_dir:
            self._copy_tree(src)
        upper_src = self.writable(src)
        if dst_host is not None:
            self.remove(dst, directory=src_dir)
        upper_dst = self.writable(dst, copy=False)
        os.replace(upper_src, upper_dst)
        if src_dir:
            self.opaque.add(dst)
        self.opaque.discard(src)
        if os.path.lexists(self.root / self._rel(src)):
            self.whiteouts.add(src)

    def _copy_tree(self, guest: str) -> None:
        """Copy a directory and everything below it (as the merged view shows it) into the overlay."""
        self.writable(guest)
        for name in self.listdir(guest):
            child = guest.rstrip("/") + "/" + name
            host = self.locate(child)
            if host is not None and stat.S_ISDIR(os.lstat(host).st_mode):
                self._copy_tree(child)
            else:
                self.writable(child)
        self.opaque.add(guest)

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
        if not self._hidden(guest) and guest not in self.opaque and os.path.isdir(self.root / rel):
            names.update(dict.fromkeys(os.listdir(self.root / rel)))
        if self.overlay is not None and os.path.isdir(self.overlay / rel):
            names.update(dict.fromkeys(os.listdir(self.overlay / rel)))
        prefix = "/" if guest == "/" else guest + "/"
        return [n for n in names if prefix + n not in self.whiteouts]
