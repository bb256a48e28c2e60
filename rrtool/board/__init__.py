"""The SDK board: the port-I/O devices and host backends that freestanding guests built against `rrtool/guest/` see.

One module per event source or device (`console`, `rtc`, `rng`, `clock`, `intc`, `system`, `block` with its
`disk` backend, `nic` with the `net/` backends), each a unit of `rrtool.machine.units`; `board` assembles them
into the platform the machine core runs, and `host` attaches their host backends for live runs and recordings.
"""

from rrtool.board.board import Board
from rrtool.board.config import BoardConfig

__all__ = ["Board", "BoardConfig"]
