"""``python -m bot`` is ``signbot``."""

from bot.cli import main

main()
