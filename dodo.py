"""`doit` in this folder builds the default example (project.yaml) into out/."""

from pathlib import Path

from jobpack.paths import Paths
from jobpack.tasks import doit_config, make_tasks

_HERE = Path(__file__).resolve().parent
_PATHS = Paths(_HERE / "project.yaml", _HERE / "out")

DOIT_CONFIG = doit_config(_PATHS)
globals().update(make_tasks(_PATHS.project, _PATHS.out))
