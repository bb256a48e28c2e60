"""`python -m rrtool.cli`: the same as the `rrtool` script."""

from rrtool.cli import main

main()
