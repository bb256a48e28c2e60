"""Files the user names: inputs that must be regular files, outputs that must never clobber an input.

Why one module for every command: the same three mistakes were made in
each command on its own. A fifo, ``/dev/zero`` or a directory given where a
file is meant blocks in ``open()`` or reads forever; an output that is the
same file as an input (``record g.elf -o g.elf``, ``sql t.arrow --parquet
t.arrow``) destroyed the input; and an output written in place looked
complete after a kill. Like ``rrtool._host`` it imports only the standard
library, so every layer may use it (see that module for why it sits at the
top of the package).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "PathError",
    "atomic_directory",
    "atomic_output",
    "check_input_file",
    "check_output_path",
    "part_path",
    "refuse_clobber",
    "replace_directory",
    "same_file",
]


class PathError(Exception):
    """A path cannot be used as given; ``str()`` is one line for the user."""


def check_input_file(path: Path, what: str) -> os.stat_result:
    """Refuse anything but an existing regular file (following symlinks), before anything opens it.

    ``what`` names the role in the message ("trace file", "disk image").
    ``stat`` never blocks, unlike ``open()`` on a fifo, so the check is safe
    to make first; the result is returned for callers that want the size.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PathError(f"{path}: no such {what}") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise PathError(f"{path}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise PathError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise PathError(f"{path}: not a regular file (a fifo or device?), so not usable as a {what}")
    if not os.access(path, os.R_OK):
        raise PathError(f"{path}: cannot read {what}: permission denied")
    return st


def same_file(a: Path, b: Path) -> bool:
    """True when both exist and are one file (hard links and symlinks included), or name the same path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def refuse_clobber(output: Path, inputs: Iterable[tuple[Path | None, str]]) -> None:
    """Refuse an output that is one of the inputs; each input comes with the role named in the error."""
    for path, role in inputs:
        if path is not None and same_file(output, path):
            raise PathError(f"{output}: is the {role}; choose another output file")


def check_output_path(path: Path, what: str = "output file") -> None:
    """Refuse an output that cannot be written as a file, before any work is done (one line, not a traceback).

    An existing directory, a missing or unwritable parent directory are found
    now rather than after a long export; an existing fifo or device is refused
    because "replacing" it would rename a file over something the user did
    not mean as a file.
    """
    st = _stat_output(path, what)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise PathError(f"{path}: is a directory; give a file name for the {what}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PathError(f"{path}: not a regular file (a fifo or device?); give a file name for the {what}")
    _check_directory(path)


def _stat_output(path: Path, what: str) -> os.stat_result | None:
    """What is at an output path now (None: nothing yet); a path that cannot even be looked at is a PathError."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PathError(f"{path}: cannot use as {what}: {getattr(exc, 'strerror', None) or exc}") from None


def _check_directory(path: Path) -> Path:
    directory = path.parent
    if not directory.is_dir():
        raise PathError(f"{path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PathError(f"{path}: directory {directory} is not writable")
    return directory


def part_path(path: Path) -> Path:
    """``<path>.part``: the visible name a recording is written under until it ends (see the recorder)."""
    return Path(f"{path}.part")


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o666) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it onto ``path`` only if the block completes.

    The temporary file is in the same directory so that ``os.replace`` is a
    rename on one file system (atomic: a reader sees the old file or the new
    one, never half of it), and it is removed when the block raises, so an
    interrupted export leaves nothing that looks complete. The yielded path
    exists (empty) so that writers which refuse to create files still work.
    ``mode`` (before the umask) is the renamed file's, since mkstemp's 0600
    would otherwise stick (0o777 for an executable such as a guest ELF).
    """
    check_output_path(path)
    directory = _check_directory(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise PathError(f"{path}: cannot create a file in {directory}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_dir():
            raise PathError(f"{path}: writer produced a directory, not a file")
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Like ``atomic_output`` for a directory of files (a Parquet dataset): built under a temporary name.

    ``path`` may be missing or an empty directory (``rename`` replaces an empty
    directory atomically); anything else is refused up front, since replacing
    a directory with contents would mean deleting files rrtool did not write.
    The temporary tree is removed when the block raises.
    """
    st = _stat_output(path, "output directory")
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise PathError(f"{path}: exists and is not a directory; give a new directory name")
        if any(path.iterdir()):
            raise PathError(f"{path}: exists and is not an empty directory")
    directory = _check_directory(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=directory))
    except OSError as exc:
        raise PathError(f"{path}: cannot create a directory in {directory}: {exc.strerror or exc}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def replace_directory(new: Path, target: Path) -> Path | None:
    """Put directory `new` at `target` in one step; return where the old `target` now is (to delete), or None.

    With no `target` yet this is a rename. Otherwise Linux's `renameat2(RENAME_EXCHANGE)` swaps the two
    names atomically, so a reader sees the old directory or the new one, never neither; where the file
    system cannot exchange (EINVAL), the old one is renamed away first and the gap is one rename long.
    """
    if not target.exists():
        os.rename(new, target)
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        done = renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE)
        if done == 0:
            return new
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(target))
    old = new.with_name(new.name + ".old")
    os.rename(target, old)
    os.rename(new, target)
    return old


def _umask() -> int:
    """The process umask (read by setting and restoring it), so renamed outputs get the usual mode, not 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
