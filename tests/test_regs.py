"""The board's register map (rrtool/board/regs.py) against its C twin, the guest SDK header.

The values come from the header as the guest's compiler sees them: a small
host program that includes rrtool.h prints every macro, so casts, suffixes and
the bank macros (``RR_TIMER_BASE(i)``) are evaluated by gcc, not re-parsed here.

Which header names are the register map: every ``#define`` in the header's
"Port numbers" and "IRQ lines" sections. Each one must be accounted for below,
so a define added there fails this test until it is given a twin in regs.py or
a reason why regs.py does not need one:

* TWINS: the same value under the same name without ``RR_`` (or a listed
  other name);
* BANKS: one-parameter macros for the timers, the network cards (and each
  card register) and their IRQ lines, checked for every instance regs.py has,
  against regs.py's base, stride and per-instance offset;
* DERIVED: a header fact regs.py implies without naming it;
* NOT_REGISTER_MAP: values that go through a register rather than name one
  (bit masks, the absent-card pattern) and SDK conventions the board does not
  know about.

In the other direction, every constant in regs.py must be checked by one of
the above or be listed in PYTHON_ONLY with the reason it has no twin.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

import pytest

from rrtool.board import regs
from rrtool.guest.build import SDK_DIR
from rrtool.machine import cpu

HEADER = SDK_DIR / "rrtool.h"
SECTION_START = "/* ---- Port numbers"
SECTION_END = "/* ---- Port I/O"
INSTANCES = 16  # bank macros are evaluated for 0..INSTANCES-1, more than any bank has

TWIN_NAMES = {
    "RR_TIMER_COUNT": "NUM_TIMERS",
    "RR_NET_CARDS": "NUM_NETS",
    "RR_EXIT": "SYS_EXIT",
    "RR_ICOUNT_LO": "SYS_ICOUNT_LO",
    "RR_ICOUNT_HI": "SYS_ICOUNT_HI",
}
TWINS = (
    "RR_CON_BUF_ADDR", "RR_CON_BUF_LEN", "RR_CON_BUF_MAX", "RR_CON_DATA", "RR_CON_STATUS",
    "RR_CLOCK_LO", "RR_CLOCK_HI", "RR_TIMER_COUNT", "RR_RTC_LO", "RR_RTC_HI", "RR_RNG",
    "RR_IRQ_PENDING", "RR_IRQ_ENABLE", "RR_IRQ_VECTOR_LO", "RR_IRQ_VECTOR_HI",
    "RR_EXIT", "RR_ICOUNT_LO", "RR_ICOUNT_HI", "RR_SYS_RESET", "RR_BLK_BASE", "RR_NET_CARDS",
    "RR_IRQ_CONSOLE", "RR_IRQ_BLOCK",
    "RR_BLK_CAPACITY_LO", "RR_BLK_CAPACITY_HI", "RR_BLK_RING_LO", "RR_BLK_RING_HI", "RR_BLK_RING_SIZE",
    "RR_BLK_SUBMIT", "RR_BLK_COMPLETED", "RR_BLK_MAX_SECTORS", "RR_BLK_ERRORS", "RR_BLK_LAST_ERROR",
)  # fmt: skip
#: A card's registers: offsets in regs.py, per-card macros in the header.
NET_REGISTERS = (
    "MAC_LO", "MAC_HI", "STATUS", "CTRL", "RX_RING", "RX_SIZE", "RX_HEAD", "RX_TAIL", "TX_RING", "TX_SIZE",
    "TX_TAIL", "TX_HEAD", "RX_DROPS", "RX_ERRORS", "TX_ERRORS", "IPV4",
)  # fmt: skip


def _instance(base: str, stride: str, offset: str | None = None) -> Callable[[int], int]:
    """Port of register ``offset`` (the bank's base without one) of instance i, from regs.py's names."""
    return lambda i: getattr(regs, base) + i * getattr(regs, stride) + (getattr(regs, offset) if offset else 0)


def _line(first: str) -> Callable[[int], int]:
    return lambda i: int(getattr(regs, first)) + i


# macro -> (regs names it is checked against, instance count, value of instance i)
BANKS: dict[str, tuple[tuple[str, ...], int, Callable[[int], int]]] = {
    "RR_TIMER_BASE": (("TIMER_BASE", "TIMER_STRIDE"), regs.NUM_TIMERS, _instance("TIMER_BASE", "TIMER_STRIDE")),
    **{
        f"RR_TIMER_{reg}": (
            ("TIMER_BASE", "TIMER_STRIDE", f"TIMER_{reg}"),
            regs.NUM_TIMERS,
            _instance("TIMER_BASE", "TIMER_STRIDE", f"TIMER_{reg}"),
        )
        for reg in ("DEADLINE_LO", "DEADLINE_HI", "PERIOD", "CTRL")
    },
    "RR_NET_BASE": (("NET_BASE", "NET_STRIDE"), regs.NUM_NETS, _instance("NET_BASE", "NET_STRIDE")),
    **{
        f"RR_NET_{reg}": (
            ("NET_BASE", "NET_STRIDE", f"NET_{reg}"),
            regs.NUM_NETS,
            _instance("NET_BASE", "NET_STRIDE", f"NET_{reg}"),
        )
        for reg in NET_REGISTERS
    },
    "RR_IRQ_TIMER": (("IRQ_TIMER0",), regs.NUM_TIMERS, _line("IRQ_TIMER0")),
    "RR_IRQ_NET": (("IRQ_NET0",), regs.NUM_NETS, _line("IRQ_NET0")),
}
# macro -> (regs names it is checked against, the value regs.py implies)
DERIVED: dict[str, tuple[tuple[str, ...], int]] = {
    # the lines regs.py hands out are 0..RR_IRQ_LINES-1, the cards' coming last
    "RR_IRQ_LINES": (("IRQ_NET0", "NUM_NETS"), regs.IRQ_NET0 + regs.NUM_NETS),
}
NOT_REGISTER_MAP = {
    "RR_CON_STATUS_RX": "a bit of CON_STATUS",
    "RR_TIMER_CTRL_ARM": "a bit of a timer's CTRL",
    "RR_NET_STATUS_LINK": "a bit of a card's STATUS",
    "RR_NET_CTRL_RX_ENABLE": "a bit of a card's CTRL",
    "RR_NET_ABSENT": "what an absent card's registers read",
    "RR_SLEEP_TIMER": "which timer the SDK's rr_sleep_ns uses; the board treats all timers alike",
}
PYTHON_ONLY = {
    "NONE_WAITING": "what CON_DATA reads with no input waiting; the header spells it 0xFFFFFFFFu in rr_getc",
    "RAM_BASE": "the memory map, not a port; checked against the machine's own RAM_BASE instead",
    "BLK_WINDOW": "the size of the block device's port window; checked against its registers and the first card",
}

_DEFINE = re.compile(r"^#define\s+(RR_\w+)(\(\w+\))?\s", re.MULTILINE)


def register_map_defines() -> dict[str, bool]:
    """Macros of the register-map sections: name -> takes an instance parameter."""
    text = HEADER.read_text()
    start, end = text.find(SECTION_START), text.find(SECTION_END)
    assert 0 <= start < end, f"{HEADER.name}: the sections {SECTION_START!r}..{SECTION_END!r} moved; update this test"
    return {m[1]: bool(m[2]) for m in _DEFINE.finditer(text, start, end)}


@pytest.fixture(scope="module")
def header_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Every register-map macro's value as gcc computes it; a bank macro's as ``NAME(i)``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    lines = []
    for name, banked in register_map_defines().items():
        if banked:
            lines.append(
                f'    for (int i = 0; i < {INSTANCES}; i++) printf("{name}(%d) %lld\\n", i, (long long)({name}(i)));'
            )
        else:
            lines.append(f'    printf("{name} %lld\\n", (long long)({name}));')
    tmp = tmp_path_factory.mktemp("regs")
    source = tmp / "print_regs.c"
    source.write_text('#include <stdio.h>\n#include "rrtool.h"\nint main(void)\n{\n' + "\n".join(lines) + "\n}\n")
    exe = tmp / "print_regs"
    subprocess.run([gcc, "-O0", f"-I{SDK_DIR}", str(source), "-o", str(exe)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def regs_constants() -> dict[str, int]:
    return {name: value for name, value in vars(regs).items() if name.isupper() and isinstance(value, int)}


def test_every_register_map_define_is_classified() -> None:
    defines = register_map_defines()
    classified = [*TWINS, *BANKS, *DERIVED, *NOT_REGISTER_MAP]
    assert len(classified) == len(set(classified)), "a header name is classified twice"
    unclassified = sorted(set(defines) - set(classified))
    assert not unclassified, (
        f"{HEADER.name} defines {unclassified} in its register-map sections: give each a twin in "
        "rrtool/board/regs.py and list it in this test, or list it with the reason it needs none"
    )
    gone = sorted(set(classified) - set(defines))
    assert not gone, f"{gone} are no longer defined in {HEADER.name}'s register-map sections"
    assert all(defines[name] for name in BANKS), "the BANKS entries must be one-parameter macros"


def test_twins_have_the_header_values(header_values: dict[str, int]) -> None:
    ours = regs_constants()
    for name in TWINS:
        twin = TWIN_NAMES.get(name, name.removeprefix("RR_"))
        assert twin in ours, f"rrtool/board/regs.py lacks {twin} (the header's {name})"
        assert ours[twin] == header_values[name], f"regs.{twin} = {ours[twin]:#x}, {name} = {header_values[name]:#x}"


def test_banks_match_base_stride_and_offset(header_values: dict[str, int]) -> None:
    for name, (_, count, value) in BANKS.items():
        for i in range(count):
            got, expected = header_values[f"{name}({i})"], value(i)
            assert got == expected, f"{name}({i}) = {got:#x}, regs.py gives {expected:#x}"


def test_derived_values(header_values: dict[str, int]) -> None:
    for name, (used, implied) in DERIVED.items():
        assert header_values[name] == implied, f"{name} = {header_values[name]}, regs.py implies {implied} ({used})"


def test_device_windows_hold_their_registers_and_do_not_overlap() -> None:
    blk = [v for k, v in regs_constants().items() if k.startswith("BLK_") and k != "BLK_WINDOW"]
    assert all(regs.BLK_BASE <= v < regs.BLK_BASE + regs.BLK_WINDOW for v in blk)
    assert regs.BLK_BASE + regs.BLK_WINDOW <= regs.NET_BASE, "the block device's window runs into the first card"
    card = [v for k, v in regs_constants().items() if k.startswith("NET_") and k not in ("NET_BASE", "NET_STRIDE")]
    assert all(0 <= v < regs.NET_STRIDE for v in card), "a card register lies outside its card's window"


def test_ram_base_is_the_machines() -> None:
    assert regs.RAM_BASE == cpu.RAM_BASE


def test_regs_has_nothing_unchecked() -> None:
    checked = {TWIN_NAMES.get(name, name.removeprefix("RR_")) for name in TWINS}
    for used, _count, _value in BANKS.values():
        checked.update(used)
    for used, _implied in DERIVED.values():
        checked.update(used)
    checked.update(PYTHON_ONLY)
    unchecked = sorted(set(regs_constants()) - checked)
    assert not unchecked, f"rrtool/board/regs.py has {unchecked}, which nothing here checks against {HEADER.name}"
