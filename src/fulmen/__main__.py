"""``python -m fulmen``: the same as the ``fulmen`` command."""

from fulmen.cli import main

main()
