"""`python -m primum`: the same command line as the `primum` console script."""

from primum.cli.main import main

main()
