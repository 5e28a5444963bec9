"""What Azure ML and ``az ml`` accept, checked at build time: names of the workspace and its
compute, images and environments, data paths and their modes, time limits, and what an
Azure ML job needs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...loader import Loc
from ...project import model as m
from ...project.checker import Checker, Loaded, suggest
from ...project.kind import JobScope
from ...shell import PLACEHOLDER, var_refs
from .model import AzuremlCluster, AzuremlJob

SECRET_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# Azure's own rules for the names az takes (-g, -w) and the YAML names (compute, instance
# type, experiment, datastore).
# A leading - is refused: az would read the value as an option.
RESOURCE_GROUP = re.compile(r"(?!-)[-\w._()]{0,89}[-\w_()]")
WORKSPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,32}")
SUBSCRIPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()-]{0,99}")
COMPUTE = re.compile(r"(azureml:)?[A-Za-z][A-Za-z0-9-]{1,31}")
INSTANCE_TYPE = re.compile(r"[A-Za-z0-9_]{1,64}")
EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,249}")
DATASTORE = re.compile(r"[A-Za-z0-9_]{1,255}")
ENVIRONMENT = re.compile(r"azureml:[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+|@latest)")
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")
IO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
SHM_SIZE = re.compile(r"[0-9]{1,9}[bkmg]")
TIMEOUT = re.compile(r"([0-9]{1,9})([smhd])")
TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,254}")
# What a data path may be besides a datastore path: Azure ML and storage URIs, data assets.
URI = re.compile(r"(azureml|https|wasbs|abfss|adl)://\S+|azureml:[A-Za-z0-9][A-Za-z0-9_.-]*"
                 r"(:[A-Za-z0-9_.-]+|@latest)")
STORE_PATH = re.compile(r"(?P<store>[A-Za-z0-9_]+):(?P<path>[^\s:][^\s]*)")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def options(job: m.Job) -> AzuremlJob:
    """The Azure ML keys of a job on an Azure ML cluster."""
    assert isinstance(job.options, AzuremlJob), "not a job on an Azure ML cluster"
    return job.options


def timeout_seconds(value: str | int) -> int:
    """Seconds of a ``timeout``: a number of seconds, or a number with s, m, h or d.

    >>> [timeout_seconds(v) for v in (3600, "90m", "2h", "1d")]
    [3600, 5400, 7200, 86400]
    """
    if isinstance(value, int):
        return value
    match = TIMEOUT.fullmatch(value)
    assert match, f"unchecked timeout {value!r}"
    return int(match[1]) * SECONDS[match[2]]


def _named(ck: Checker, loc: Loc, value: str | None, pattern: re.Pattern[str], what: str,
           *, secret: bool = False) -> None:
    """A name Azure would refuse (``secret``: a single ${NAME} is read at run time)."""
    if value is None or pattern.fullmatch(value):
        return
    if (secret and SECRET_REF.fullmatch(value)) or (not secret and var_refs(value)):
        return  # a secret read at run time; or a reference, which _no_refs reports
    ck.add(loc, f"{value!r} is not {what}" + (", or a single ${SECRET} reference" if secret
                                              else ""))


def check_cluster(ck: Checker, loc: Loc, cl: AzuremlCluster) -> None:
    _named(ck, (*loc, "subscription"), cl.subscription, SUBSCRIPTION,
           "a subscription id or name", secret=True)
    _named(ck, (*loc, "resource_group"), cl.resource_group, RESOURCE_GROUP,
           "a resource group name (letters, digits and -._(), at most 90, not starting "
           "with -)", secret=True)
    _named(ck, (*loc, "workspace"), cl.workspace, WORKSPACE,
           "a workspace name (3 to 33 letters, digits, _ and -)", secret=True)
    _named(ck, (*loc, "compute"), cl.compute, COMPUTE,
           "a compute name (a letter, then letters, digits and -, at most 32)")
    _named(ck, (*loc, "instance_type"), cl.instance_type, INSTANCE_TYPE,
           "an instance type (e.g. Standard_NC24rs_v3)")
    _named(ck, (*loc, "experiment"), cl.experiment, EXPERIMENT,
           "an experiment name (letters, digits, _ and -, at most 250)")
    _named(ck, (*loc, "shm_size"), cl.shm_size, SHM_SIZE,
           "a shared memory size: a number and b, k, m or g (e.g. 16g)")
    for name, store in cl.datastores.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            ck.add((*loc, "datastores", name), f"{name!r} is not a datastore short name "
                   "(letters, digits and _)", key=True)
        _named(ck, (*loc, "datastores", name), store, DATASTORE,
               "a datastore name (letters, digits and _)")
    _no_refs(ck, loc, cl.model_dump(include={"compute", "instance_type", "experiment",
                                             "datastores", "shm_size"}))
    for key, value in cl.env.items():
        _env_value(ck, (*loc, "env", key), m._scalar_text(value), set())


def _no_refs(ck: Checker, loc: Loc, values: object) -> None:
    """Values written into the job YAML: a secret is never written there, so no ${NAME}."""
    if isinstance(values, dict):
        for key, value in values.items():
            _no_refs(ck, (*loc, key), value)
    elif isinstance(values, str) and var_refs(values):
        ck.add(loc, "this value is written into the job YAML, which never holds a secret or "
               "a ${NAME} to expand: only env values and the cluster's subscription, "
               "resource_group and workspace may refer to a secret")


def _env_value(ck: Checker, loc: Loc, text: str, params: set[str]) -> None:
    """An env value is written into the YAML as it is; a secret in it is filled in by the
    submit script. Azure ML expands nothing in it."""
    if re.search(r"\{\{\s*run_id\s*\}\}", text):
        ck.add(loc, "'{{ run_id }}' is known only at submission, and env values are written "
               "into the job YAML at build time: use $RUN_ID in the command (every Azure ML "
               "job of a run gets RUN_ID in its environment)")
    uses = {p for p in PLACEHOLDER.findall(text) if p in params}
    if uses and var_refs(text):
        ck.add(loc, "an env value that uses sweep parameters is fixed at build time and "
               "cannot also read ${NAME}; split it into two variables")


def _env_refs(ck: Checker, loc: Loc, text: str, secrets: set[str]) -> None:
    for name in var_refs(text):
        if name not in secrets:
            ck.add(loc, f"'${{{name}}}': Azure ML sets environment values as written, without "
                   "expanding them; only a secret is filled in (at submission): use "
                   f"${name} in the command instead")


def check_job(ck: Checker, loaded: Loaded, scope: JobScope) -> None:
    """Rules of a job on an Azure ML cluster."""
    loc, jb, opts, cl = scope.loc, scope.job, options(scope.job), scope.cluster
    assert isinstance(cl, AzuremlCluster)
    _image(ck, loaded, loc, opts)
    if opts.compute is None and cl.compute is None:
        ck.add(loc, f"no compute: set 'compute' here or in cluster {jb.cluster!r}")
    _named(ck, (*loc, "compute"), opts.compute, COMPUTE,
           "a compute name (a letter, then letters, digits and -, at most 32)")
    _named(ck, (*loc, "resources", "instance_type"), opts.resources.instance_type,
           INSTANCE_TYPE, "an instance type (e.g. Standard_NC24rs_v3)")
    _named(ck, (*loc, "shm_size"), opts.shm_size, SHM_SIZE,
           "a shared memory size: a number and b, k, m or g (e.g. 16g)")
    _launcher(ck, loc, opts)
    _timeout(ck, loc, opts.timeout)
    _code(ck, loaded, loc, opts.code)
    _data(ck, loc, cl, opts)
    for key in opts.tags:
        if not TAG_KEY.fullmatch(key):
            ck.add((*loc, "tags", key), f"{key!r} is not a tag name (letters, digits and "
                   "_.:/-)", key=True)
    _no_refs(ck, loc, opts.model_dump(exclude={"resources", "launcher", "processes_per_node"}))
    _no_refs(ck, (*loc, "resources"), opts.resources.model_dump())
    secrets = set(loaded.project.secrets)
    params = set(scope.points.names)
    envs: list[tuple[Loc, dict[str, m.Scalar]]] = [(loc, jb.env)]
    # The project's and the cluster's env are checked with the first job that gets them.
    mates = [n for n, j in loaded.project.jobs.items()
             if isinstance(j.options, AzuremlJob)]
    if mates[0] == scope.name:
        envs.append(((), loaded.project.env))
    if next(n for n in mates if loaded.project.jobs[n].cluster == jb.cluster) == scope.name:
        envs.append((("clusters", jb.cluster), cl.env))
    for where, env in envs:
        for key, value in env.items():
            text = m._scalar_text(value)
            if where[:1] != ("clusters",):
                _env_value(ck, (*where, "env", key), text, params if where == loc else set())
            _env_refs(ck, (*where, "env", key), text, secrets)
    _points(ck, loc, scope)


def _image(ck: Checker, loaded: Loaded, loc: Loc, opts: AzuremlJob) -> None:
    image = opts.image
    if image is None:
        ck.add(loc, "an Azure ML job needs 'image': a name in images, a reference such as "
               "myacr.azurecr.io/REPO:TAG, or an environment azureml:NAME:VERSION")
    elif image.startswith("azureml:"):
        if not ENVIRONMENT.fullmatch(image):
            ck.add((*loc, "image"), f"{image!r} is not an environment azureml:NAME:VERSION "
                   "or azureml:NAME@latest")
    elif image in loaded.project.images:
        if not loaded.project.images[image].tags:
            ck.add((*loc, "image"), f"image {image!r} has no tags to run from")
    elif not IMAGE_REF.fullmatch(image):
        ck.add((*loc, "image"), f"{image!r} is not an image reference (e.g. "
               "myacr.azurecr.io/REPO:TAG)")
    elif re.fullmatch(m.NAME, image) and "/" not in image and ":" not in image:
        ck.add((*loc, "image"), f"unknown image {image!r}{suggest(image, loaded.project.images)}"
               "; name one in 'images' or give a reference such as myacr.azurecr.io/REPO:TAG")


def _launcher(ck: Checker, loc: Loc, opts: AzuremlJob) -> None:
    if opts.launcher == "none" or opts.processes_per_node is not None:
        return
    if not opts.resources.gpus_per_node:
        ck.add((*loc, "launcher"), f"launcher {opts.launcher} starts one process per GPU: "
               "set resources.gpus_per_node (or processes_per_node)")


def _timeout(ck: Checker, loc: Loc, value: str | int | None) -> None:
    if value is None:
        return
    if isinstance(value, str) and not TIMEOUT.fullmatch(value):
        ck.add((*loc, "timeout"), f"{value!r} is not a time limit: seconds, or a number with "
               "s, m, h or d (e.g. 3600, 90m, 24h)")
    elif not 1 <= timeout_seconds(value) <= 2**31 - 1:
        ck.add((*loc, "timeout"), "a time limit is between 1 second and 2147483647 seconds")


def _code(ck: Checker, loaded: Loaded, loc: Loc, code: str | None) -> None:
    """The code folder is uploaded by az from the project: a folder inside it."""
    if code is None:
        return
    root = os.path.realpath(loaded.root)
    real = Path(os.path.realpath(loaded.root / code))
    if code.startswith("/") or not real.is_relative_to(root) or real == Path(root):
        ck.add((*loc, "code"), f"{code!r}: the code folder is a folder of the project (a path "
               "relative to project.yaml, inside its folder, not the folder itself)")
    elif not real.is_dir():
        ck.add((*loc, "code"), f"code folder {code!r} does not exist")
    elif not re.fullmatch(r"[A-Za-z0-9_.@+=,/-]+", code) or ".." in code.split("/"):
        ck.add((*loc, "code"), f"{code!r}: a code folder path takes letters, digits and "
               "_.@+=,/- without '..'")


def _data(ck: Checker, loc: Loc, cl: AzuremlCluster, opts: AzuremlJob) -> None:
    items: list[tuple[str, str, str | None]] = [("inputs", n, i.path)
                                                for n, i in opts.inputs.items()]
    items += [("outputs", n, o.path) for n, o in opts.outputs.items()]
    for section, name, path in items:
        where = (*loc, section, name)
        if not IO_NAME.fullmatch(name):
            ck.add(where, f"{name!r} is not an input or output name (letters, digits and _, "
                   "not starting with a digit)", key=True)
        if name in opts.inputs and name in opts.outputs and section == "outputs":
            ck.add(where, f"{name!r} is both an input and an output", key=True)
        if path is not None and (problem := data_path_problem(path, cl)):
            ck.add((*where, "path"), problem)


def data_path_problem(path: str, cl: AzuremlCluster) -> str | None:
    """Why ``path`` is not a data path of this cluster (None when it is).

    >>> cl = AzuremlCluster(kind="azureml", resource_group="g", workspace="w1x",
    ...                     datastores={"vig": "vigblob"})
    >>> [data_path_problem(p, cl) for p in ("vig:data/x", "azureml://datastores/a/paths/b")]
    [None, None]
    >>> print(data_path_problem("blob:data/x", cl))  # doctest: +NORMALIZE_WHITESPACE
    unknown datastore 'blob' (datastores of this cluster: vig)
    """
    if URI.fullmatch(path):
        return None
    match = STORE_PATH.fullmatch(path)
    if match and match["store"] in cl.datastores:
        return None
    if match and not path.startswith(("http:", "file:")):
        known = ", ".join(cl.datastores) or "none; declare them under the cluster's datastores"
        return (f"unknown datastore {match['store']!r}{suggest(match['store'], cl.datastores)} "
                f"(datastores of this cluster: {known})")
    return (f"{path!r} is not a data path: give STORE:path (STORE in the cluster's datastores), "
            "an azureml:// URI, a blob URL (https://, wasbs://, abfss://) or a data asset "
            "azureml:NAME:VERSION; a local folder goes in 'code'")


def _points(ck: Checker, loc: Loc, scope: JobScope) -> None:
    """Every point is its own Azure ML job with its own YAML, named after its values."""
    first: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(scope.points.rows):
        if row in first:
            ck.add((*loc, "sweep"), f"point {i} repeats point {first[row]} (same values); each "
                   "point is its own Azure ML job named after its values, so points must differ")
            return
        first[row] = i
