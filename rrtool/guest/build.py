"""Build guest programs for rrtool's x86-64 machine with the host's gcc.

A guest is a freestanding static ELF: the SDK (``sdk/``) supplies the entry
point, the interrupt stub, a tiny libc and the linker script, and the user's
sources supply ``main``. The host's ordinary x86-64 gcc is enough because the
guest runs in the same long mode with no OS underneath, so no cross toolchain
is needed; the flags below remove everything that assumes an OS or a loader.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rrtool._host import CompilerNotFoundError, cache_dir, find_c_compiler
from rrtool._paths import PathError, atomic_output, check_input_file, refuse_clobber

__all__ = [
    "EXAMPLES_DIR",
    "GUEST_CFLAGS",
    "SDK_DIR",
    "GuestBuildError",
    "build_guest",
    "ensure_example",
    "example_source",
    "list_examples",
    "resolve_source",
]

# Plain paths rather than importlib.resources: gcc needs real files on disk,
# and the SDK ships as ordinary package files next to this module.
SDK_DIR: Path = Path(__file__).resolve().parent / "sdk"
EXAMPLES_DIR: Path = Path(__file__).resolve().parent / "examples"

_LINKER_SCRIPT = "guest.ld"


def _sdk_sources() -> list[Path]:
    """The SDK's sources linked into every guest: crt0.S, then every ``sdk/*.c``.

    Globbing (sorted, for a stable command line) means a new driver file is
    picked up without touching this list. Unused drivers cost a little image
    size but no behaviour: nothing runs unless the guest calls it.
    """
    return [SDK_DIR / "crt0.S", *sorted(SDK_DIR.glob("*.c"))]


# Why each flag:
#   -ffreestanding -nostdlib -static   no host libc, headers or startup files;
#   -no-pie -fno-pie                   absolute addresses: the image is loaded
#                                      exactly where guest.ld says;
#   -mno-red-zone                      the host pushes interrupt frames right
#                                      below RSP, which would clobber the
#                                      128-byte red zone of a leaf function;
#   -mgeneral-regs-only                the interrupt stub saves only general
#                                      purpose registers, so no SSE/x87 code;
#   -fno-stack-protector               there is no TLS canary to read;
#   -fno-asynchronous-unwind-tables    no .eh_frame: nothing unwinds;
#   -g0                                small, reproducible images.
GUEST_CFLAGS: tuple[str, ...] = (
    "-ffreestanding",
    "-nostdlib",
    "-static",
    "-no-pie",
    "-fno-pie",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-O2",
    "-g0",
    "-Wall",
)


class GuestBuildError(Exception):
    """A guest could not be built; ``str()`` is a one-line reason.

    Compiler output can be long, so the full stderr (when there is one) is
    kept on ``details`` for callers that want to show it.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _first_error_line(stderr: str) -> str:
    """Pick the line of gcc's output that best explains a failure.

    gcc often starts with context lines ("In function 'main':") that say
    nothing on their own, so prefer the first line that reports an error.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line or "undefined reference" in line:
            return line
    return lines[0] if lines else "no compiler output"


def build_guest(sources: Sequence[Path], output: Path, *, extra_cflags: Sequence[str] = ()) -> Path:
    """Compile and link ``sources`` with the SDK into the ELF ``output``.

    Everything is compiled and linked in one gcc run: guests are small, and
    one invocation means no intermediate object files to manage. Returns
    ``output``. ``extra_cflags`` come after the SDK flags, so they can
    override them (``-O0``, ``-DROUNDS=1``).
    """
    if not sources:
        raise GuestBuildError("no guest sources given")
    srcs = [Path(s) for s in sources]
    for src in srcs:
        if not src.exists():
            raise GuestBuildError(f"guest source not found: {src}")
        try:
            check_input_file(src, "guest source")  # a fifo would block gcc, a device never end
        except PathError as exc:
            raise GuestBuildError(str(exc)) from None
    try:
        cc = find_c_compiler("the guest SDK")
    except CompilerNotFoundError as exc:
        raise GuestBuildError(str(exc)) from exc
    output = Path(output)
    # gcc writes its output in place (and `-o hello.c` would compile the source onto itself):
    # refuse an output that is a source, and let gcc write a temporary name renamed when it succeeds.
    refuse_clobber(output, [(src, "guest source") for src in srcs])
    with atomic_output(output, mode=0o777) as tmp:
        _compile(cc, srcs, tmp, extra_cflags)
    return output


def _compile(cc: str, srcs: list[Path], output: Path, extra_cflags: Sequence[str]) -> None:
    cmd = [
        cc,
        *GUEST_CFLAGS,
        f"-I{SDK_DIR}",
        *extra_cflags,
        "-T",
        str(SDK_DIR / _LINKER_SCRIPT),
        "-Wl,--build-id=none",
        *(str(path) for path in _sdk_sources()),
        *(str(s) for s in srcs),
        "-o",
        str(output),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GuestBuildError(f"cannot run {cc}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        names = ", ".join(s.name for s in srcs)
        first = _first_error_line(proc.stderr)
        raise GuestBuildError(f"building {names} failed: {first}", details=proc.stderr)


def list_examples() -> list[str]:
    """Names of the bundled example guests (``examples/*.c`` stems), sorted."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.c"))


def resolve_source(text: str) -> Path:
    """A source path, or the name of a bundled example as `rrtool guest list` shows it (`timers`).

    A file of that name in the current directory wins, as for an IMAGE: a path is what the user typed.
    """
    path = Path(text)
    if not path.exists() and "/" not in text and text in list_examples():
        return example_source(text)
    return path


def example_source(name: str) -> Path:
    """Path of the example guest ``name``; unknown names list the valid ones."""
    available = list_examples()
    if name not in available:
        raise GuestBuildError(f"unknown example guest {name!r}; available: {', '.join(available)}")
    return EXAMPLES_DIR / f"{name}.c"


def _build_key(source: Path) -> str:
    """Content hash of everything that determines the built image.

    Hashing contents (not mtimes) makes the key stable across checkouts and
    changes it whenever the SDK, the example or the compile flags change.
    """
    h = hashlib.sha256()
    h.update("\0".join(GUEST_CFLAGS).encode())
    for path in sorted(p for p in SDK_DIR.iterdir() if p.is_file()):
        h.update(b"\0" + path.name.encode() + b"\0")
        h.update(path.read_bytes())
    h.update(b"\0source\0")
    h.update(source.read_bytes())
    return h.hexdigest()[:16]


def ensure_example(name: str) -> Path:
    """Return a built ELF of example ``name``, building it only when needed.

    Images are cached by content hash, so a cached file is always current.
    The build goes to a temporary file in the same directory and is renamed
    into place, so concurrent callers never see a half-written ELF (the last
    rename wins and both results are identical).
    """
    source = example_source(name)
    target = cache_dir() / "guests" / f"{name}-{_build_key(source)}.elf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        build_guest([source], tmp)
        tmp.chmod(0o644)  # mkstemp's 0600 would otherwise stick to the image
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
