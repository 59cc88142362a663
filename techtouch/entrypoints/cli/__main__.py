"""`python -m techtouch.entrypoints.cli`: the same command without the console script."""

from techtouch.entrypoints.cli import main

main()
