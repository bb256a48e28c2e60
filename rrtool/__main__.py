"""`python -m rrtool`: the same as the `rrtool` script (and `python -m rrtool.cli`)."""

from rrtool.cli import main

main()
