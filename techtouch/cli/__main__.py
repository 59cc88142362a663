"""`python -m techtouch.cli`: the same command without the console script."""

from techtouch.cli import main

main()
