"""`python -m bot.cli` runs the `ladder` command line."""

from bot.cli import main

main()
