"""``python -m jobpack``: the jobpack command."""

import sys

from .cli import main

sys.exit(main())
