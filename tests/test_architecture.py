"""The shape of the code: modules import each other without cycles, and a backend is named
only inside its own folder (and on its line of the registry)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECTS, ROOT

from generators.backends.base import ClusterBackend
from generators.registry import BACKENDS, PLANNED

PACKAGE = ROOT / "generators"
# Words of a kind that its classes and settings do not spell out: its commands.
COMMANDS = {"slurm": {"sbatch", "srun", "squeue", "sacct", "scancel"}}
# Lines that name a backend outside its folder for a reason of their own.
ALLOWED = {
    # The registry: one import and one entry per backend, and the kinds planned next.
    "registry.py": re.compile(r"from \.backends\.\w+ import BACKEND as \w+|    [A-Z_]+,"
                              r"|PLANNED: .*"),
    # A user's command may itself call `sbatch --wrap CODE`: a program that runs its
    # argument as shell code, on any machine, whatever cluster the job runs on.
    "placeholders.py": re.compile(r'.*"sbatch".*|.*"sbatch --wrap".*'),
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports, wherever the import statement is
    (also inside functions and ``if TYPE_CHECKING:``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = ".".join(p for p in (base if node.level else "", node.module or "") if p)
            subs = {f"{target}.{a.name}" for a in node.names} & modules
            out |= subs or ({target} & modules)
    return out - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        stack = [(root, iter(sorted(graph[root])))]
        trail = [root]
        state.setdefault(root, 1)
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                trail.pop()
            elif state.get(nxt) == 1:
                return [*trail[trail.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, iter(sorted(graph[nxt]))))
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, set(modules)) for name, path in modules.items()}


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert graph["generators.registry"], "the import graph was not read"
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _pattern(backend: ClusterBackend) -> re.Pattern[str]:
    """What names a cluster kind: its name, title, platform variables' prefixes and
    commands anywhere in a word (``SlurmCluster``, ``SLURMD_NODENAME``), in any case; and
    each class defined in its folder as a whole word."""
    folder = PACKAGE / "backends" / backend.name
    classes = {node.name for p in folder.rglob("*.py")
               for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef)}
    words = {backend.name, backend.title, *backend.platform_prefixes,
             *COMMANDS.get(backend.name, ())}
    return re.compile("|".join([*(f"(?i:{re.escape(w)})" for w in sorted(words)),
                                *(rf"\b{re.escape(c)}\b" for c in sorted(classes))]))


def naming(backend: ClusterBackend, files: dict[str, str]) -> list[str]:
    """Lines of ``files`` (path relative to generators/ -> text) outside the backend's folder
    that name it."""
    pattern = _pattern(backend)
    # Its own folder, and those of backends whose scripts run its commands (builds_on).
    own = [f"backends/{b.name}/" for b in BACKENDS
           if b is backend or backend.name in b.builds_on]
    found = []
    for rel, text in files.items():
        if rel.startswith(tuple(own)):
            continue
        allowed = ALLOWED.get(rel)
        for n, line in enumerate(text.splitlines(), start=1):
            if pattern.search(line) and not (allowed and allowed.fullmatch(line)):
                found.append(f"generators/{rel}:{n}: {line.strip()}")
    return found


def _sources() -> dict[str, str]:
    return {p.relative_to(PACKAGE).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(PACKAGE.rglob("*.py"))}


def test_backends_are_named_in_their_folder_only() -> None:
    kinds = [b for b in BACKENDS if isinstance(b, ClusterBackend)]
    assert {k.name for k in kinds} >= {"slurm", "ngc"}
    sources = _sources()
    found = [line for kind in kinds for line in naming(kind, sources)]
    assert not found, "a backend is named outside its folder:\n" + "\n".join(found)


def test_planned_kinds_are_named_in_the_registry_only() -> None:
    sources = _sources()
    names = [*PLANNED, *(p for ps in PLANNED.values() for p in ps)]
    if not names:  # every known kind is supported: nothing can name one
        return
    words = re.compile("|".join(map(re.escape, names)), re.I)
    found = [f"{rel}: {line.strip()}" for rel, text in sources.items() if rel != "registry.py"
             for line in text.splitlines() if words.search(line)]
    assert not found, "\n".join(found)


def test_naming_check_finds_a_reintroduced_name() -> None:
    """The check above would catch a core module that branches on a kind again."""
    slurm = next(b for b in BACKENDS if b.name == "slurm")
    assert isinstance(slurm, ClusterBackend)
    core = {"project/semantics.py": "if isinstance(cluster, SlurmCluster):\n    pass\n",
            "project/checker.py": 'PLATFORM = re.compile(r"(SLURMD)_[A-Z]+")\n'}
    assert len(naming(slurm, core)) == 2
    assert naming(slurm, {"backends/slurm/checks.py": "SlurmCluster\n"}) == []


_IMPORTS = """
import json, sys
from pathlib import Path
from generators import registry
loaded = registry.load(Path(sys.argv[1]))
loaded.out = Path(sys.argv[2])
registry.plan(loaded)
registry.plan_rows(loaded)
print(json.dumps({"used": [b.name for b in registry.used(loaded)],
                  "modules": sorted(m for m in sys.modules
                                    if m.startswith("generators.backends."))}))
"""


@pytest.mark.parametrize("project", sorted(p.name for p in PROJECTS.iterdir()
                                           if p.name not in ("invalid", "hostile")))
def test_a_build_imports_only_the_backends_its_project_uses(project: str,
                                                            tmp_path: Path) -> None:
    """A backend the project does not use is imported no further than its package's
    ``__init__``: its models, checks and plans cost the build nothing."""
    proc = subprocess.run([sys.executable, "-c", _IMPORTS, str(PROJECTS / project / "project.yaml"),
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    used = set(seen["used"])
    beyond = {m.split(".")[2] for m in seen["modules"] if m.count(".") >= 3}
    assert beyond - used - {"bundle"} == set(), f"{project} uses {sorted(used)}"
    kinds = {b.name for b in BACKENDS if isinstance(b, ClusterBackend)}
    assert used & kinds, f"{project} uses no cluster kind"


def test_dev_nodes_build_on_the_kind_their_checks_require() -> None:
    from generators.backends.dev import BACKEND, rules

    assert BACKEND.builds_on == (rules.CLUSTER_KIND,)
