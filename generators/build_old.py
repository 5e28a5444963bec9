from __future__ import annotations

from typing import Any


def generators() -> list[Any]:
    from .images import ImagesGenerator
    from .ngc import NgcGenerator
    from .slurm import SlurmGenerator
    from .sync import SyncGenerator

    return [SlurmGenerator(), NgcGenerator(), SyncGenerator(), ImagesGenerator()]
