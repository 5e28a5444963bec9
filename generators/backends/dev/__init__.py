"""The dev backend: interactive dev nodes, ``dev/<name>/`` per entry of the ``dev`` section
(an allocation held in tmux on the login node, an ssh alias that follows it, a scratch folder
restored from and backed up to the shared file system)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...project import model as m
from ...project.kind import Section
from ..base import Backend

if TYPE_CHECKING:
    from ...plan import Group
    from ...project.checker import Checker, Loaded

DESCRIPTIONS = {
    "allocate.sh": "on the login node: holds the allocation in tmux (or reuses it), prints "
                   "the node, starts scratch restore and auto-backup there",
    "ssh_config": "Include it from ~/.ssh/config on your machine: the alias follows the node",
    "init-scratch.sh": "on the node: creates scratch, restores the newest backup",
    "backup.sh": "on the node: scratch to a verified tar.lz4 backup, keeps the last few",
    "auto-backup.sh": "on the node: a backup every interval, a final one at the end signal",
    "status.sh": "allocation, node, time left, newest backup and its age",
    "release.sh": "final backup, then ends the tmux session and the allocation",
    "env.sh": "source it on the node: SCRATCH and the dev node's env",
}


class DevNodes(Section, Backend):
    name = "dev"
    section = "dev"
    builds_on = ("slurm",)  # rules.CLUSTER_KIND
    section_text_kinds = ((("*", "env", "*"), m.VALUE),)

    @property
    def entry_model(self) -> type[m.Model] | None:
        from .model import DevNode

        return DevNode

    def used(self, loaded: Loaded) -> bool:
        return self.section in loaded.sections

    def check_section(self, ck: Checker, loaded: Loaded, raw: Any) -> Any:
        from . import rules

        return rules.check(ck, loaded, raw)

    def plan(self, loaded: Loaded) -> list[Group]:
        from .plan import plan

        return plan(loaded)

    def describe(self, path: str) -> str | None:
        if not path.startswith("dev/"):
            return None
        return DESCRIPTIONS.get(path.rsplit("/", 1)[-1], "")

    def tables(self, loaded: Loaded, backends: Sequence[Backend]) -> list[dict[str, Any]]:
        from .plan import rows

        body = rows(loaded)
        if not body:
            return []
        return [{"title": "Dev nodes",
                 "head": ["dev node", "cluster", "partition", "node", "resources",
                          "ssh alias", "scratch", "backups"],
                 "rows": body}]


BACKEND = DevNodes()
