"""``python -m jobpack``: the jobpack command."""

from .cli import run

run()
