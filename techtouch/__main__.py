"""`python -m techtouch`: the `techtouch` command without the console script."""

from techtouch.entrypoints.cli import main

main()
