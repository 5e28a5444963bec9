"""Azure ML backend: one command-job YAML per job (per point of a sweep), created with
``az ml job create`` under a name chosen before the call and kept in a ledger, so a
submission is never made twice."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ...placeholders import command_code, used_names
from ...plan import FileSpec, Group, file_header, plain_context, runtime_file, text_file
from ...project import model as m
from ...project.checker import Loaded
from ...project.semantics import merged_env, static_params
from ...shell import Param, parse_text, tsv_cell, var_refs, variable, word
from .checks import STORE_PATH, URI, options, timeout_seconds
from .model import AzuremlCluster, AzuremlJob

SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
SCRIPTS = ("submit_all.sh", "ctl.sh")
# Azure ML's job states: the final ones, and the failures monitor resubmits (a job a user
# cancelled stays cancelled).
FINAL = ("Completed", "Failed", "Canceled")
RESUBMIT = ("Failed",)
# Azure ML job names: letters, digits, _ and -; the submit script adds _<8 hex digits>.
BASE_MAX = 200


def aml_cluster(loaded: Loaded, name: str) -> AzuremlCluster:
    cluster = loaded.project.clusters[name]
    assert isinstance(cluster, AzuremlCluster), f"{name} is not an Azure ML cluster"
    return cluster


def image_ref(loaded: Loaded, job: m.Job) -> str:
    """The image a job runs: an image of the project by its Azure Container Registry tag (else
    its first), an ``azureml:`` environment, or the reference as written."""
    text = str(options(job).image)
    image = loaded.project.images.get(text)
    if image is None:
        return text
    return next((t for t in image.tags if ".azurecr.io/" in t), image.tags[0])


def point_keys(names: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """A stable, unique key per point, from its values (not its position): names of jobs
    and YAML files.

    >>> point_keys(("lr", "opt"), (("0.1", "adam"), ("1e-2", "s g d")))
    ['0.1_adam', 'p0f70bf0abf']
    >>> point_keys((), ((),))
    ['']
    >>> point_keys(("s",), (("ab",), ("AB",)))  # one file on a case-insensitive disk
    ['pfb8e20fc2e', 'p38164fbd17']
    """
    def digest(row: tuple[str, ...]) -> str:
        return "p" + hashlib.sha256("\0".join(row).encode()).hexdigest()[:10]

    keys = []
    for row in rows:
        text = "_".join(row)
        keys.append(text if not text or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text)
                    else digest(row))
    if len({k.lower() for k in keys}) != len(keys):
        keys = [digest(r) for r in rows]
    return keys


def point_name(project: str, job: str, key: str) -> str:
    return f"{project}-{job}" + (f"-{key}" if key else "")


def aml_base(name: str) -> str:
    """The start of a point's Azure ML job names (letters, digits, _ and -).

    >>> aml_base("qd-train-0.1_adam")
    'qd-train-0-1_adam'
    """
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:BASE_MAX]


def yaml_path(job: str, key: str) -> str:
    """A point's YAML, relative to the cluster's folder: <job>.yml, or sweeps/<job>/<key>.yml
    for each point of a sweep."""
    return f"sweeps/{job}/{key}.yml" if key else f"{job}.yml"


def processes(opts: AzuremlJob) -> int | None:
    """Processes per node: as given, or one per GPU with a launcher (None: no launcher)."""
    if opts.processes_per_node is not None:
        return opts.processes_per_node
    return opts.resources.gpus_per_node if opts.launcher != "none" else None


def distribution(opts: AzuremlJob) -> dict[str, Any] | None:
    """Azure ML's distribution: mpirun (launcher mpi, or processes_per_node alone) or
    torchrun (type pytorch) with that many processes per node."""
    count = processes(opts)
    if count is None:
        return None
    kind = "pytorch" if opts.launcher == "torchrun" else "mpi"
    return {"type": kind, "process_count_per_instance": count}


def data_path(path: str, cl: AzuremlCluster) -> str:
    """A data path as Azure ML takes it: STORE:path through the cluster's datastores.

    >>> cl = AzuremlCluster(kind="azureml", resource_group="g", workspace="w1x",
    ...                     datastores={"vig": "vigblob"})
    >>> data_path("vig:jianfw/data", cl)
    'azureml://datastores/vigblob/paths/jianfw/data'
    """
    match = STORE_PATH.fullmatch(path)
    if URI.fullmatch(path) or not match:
        return path
    return f"azureml://datastores/{cl.datastores[match['store']]}/paths/{match['path']}"


def _filled(text: str, values: dict[str, str]) -> str:
    """``text`` with its parameters replaced by their values; ${NAME} kept as written.

    >>> _filled("a-{{ x }}-b/${HOME}", {"x": "1"})
    'a-1-b/${HOME}'
    """
    out = ""
    for part in parse_text(text)[0]:
        if isinstance(part, Param):
            out += values[part.name]
        else:
            out += getattr(part, "text", None) or "${" + getattr(part, "name", "") + "}"
    return out


class PointDocs:
    """The YAML documents of one job's points: what does not change from one point to the
    next found once."""

    def __init__(self, loaded: Loaded, name: str) -> None:
        self.loaded, self.name = loaded, name
        self.job = loaded.project.jobs[name]
        self.opts = options(self.job)
        self.cluster_name = self.job.cluster
        self.cluster = aml_cluster(loaded, self.job.cluster)
        self.points = loaded.points[name]
        self.keys = point_keys(self.points.names, self.points.rows)
        self.static = static_params(loaded, name)
        self.env = merged_env(loaded, self.job)
        self.refs = [r for r in used_names(self.job.command) if r != "run_id"]

    def document(self, index: int) -> dict[str, Any]:
        """The command job of point ``index``, keys in the order they are written."""
        values = {**self.static,
                  **dict(zip(self.points.names, self.points.rows[index], strict=True))}
        key = self.keys[index]
        env = {k: _filled(v, values) for k, v in self.env.items()}
        env.update({variable(r): values[r] for r in self.refs})
        doc: dict[str, Any] = {"$schema": SCHEMA, "type": "command",
                               "display_name": point_name(self.loaded.project.project,
                                                          self.name, key),
                               "experiment_name": self.cluster.experiment
                               or self.loaded.project.project}
        if self.job.description:
            doc["description"] = self.job.description
        doc["tags"] = {**{k: m._scalar_text(v) for k, v in self.opts.tags.items()},
                       "jobpack_project": self.loaded.project.project,
                       "jobpack_job": self.name}
        if self.opts.code is not None:
            # From the YAML's folder, wherever the bundle is written (-o), to the code's.
            root = self.loaded.root
            out = (self.loaded.out or root / "out").resolve()
            here = out / "azureml" / self.cluster_name / yaml_path(self.name, key)
            doc["code"] = Path(os.path.relpath(root / self.opts.code.strip("/"),
                                               here.parent)).as_posix()
        doc["command"] = self._exports() + command_code(self.job.command)
        image = image_ref(self.loaded, self.job)
        doc["environment"] = image if image.startswith("azureml:") else {"image": image}
        if env:
            doc["environment_variables"] = env
        compute = str(self.opts.compute or self.cluster.compute)
        doc["compute"] = compute if compute.startswith("azureml:") else f"azureml:{compute}"
        doc["resources"] = self._resources()
        if (dist := distribution(self.opts)) is not None:
            doc["distribution"] = dist
        if self.opts.timeout is not None:
            doc["limits"] = {"timeout": timeout_seconds(self.opts.timeout)}
        doc.update(self._data())
        return doc

    def _exports(self) -> str:
        """Code that puts the path of each input and output in a variable of the command:
        Azure ML writes it in place of ${{inputs.NAME}} before the command runs."""
        lines = [f'export AZUREML_{side.upper()}_{n}="${{{{{side}s.{n}}}}}"\n'
                 for side, names in (("input", self.opts.inputs), ("output", self.opts.outputs))
                 for n in names]
        return "".join(lines)

    def _resources(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instance_count": self.opts.resources.nodes}
        instance = self.opts.resources.instance_type or self.cluster.instance_type
        if instance:
            out["instance_type"] = instance
        shm = self.opts.shm_size or self.cluster.shm_size
        if shm:
            out["shm_size"] = shm
        return out

    def _data(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.opts.inputs:
            out["inputs"] = {n: {"type": i.type, "path": data_path(i.path, self.cluster),
                                 "mode": i.mode} for n, i in self.opts.inputs.items()}
        if self.opts.outputs:
            out["outputs"] = {n: {"type": o.type,
                                  **({"path": data_path(o.path, self.cluster)} if o.path
                                     else {}),
                                  "mode": o.mode} for n, o in self.opts.outputs.items()}
        return out


class _Dumper(yaml.SafeDumper):
    """The safe dumper, writing text of several lines as a literal block where it can."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def render_yaml(header: list[str], doc: dict[str, Any]) -> str:
    """A job YAML: the header as comments, then ``doc`` written by the YAML serializer
    (never by text templating), checked to read back as ``doc``; the plainest form that
    does is kept.

    >>> print(render_yaml(["h"], {"command": "a\\nb", "x": "#"}), end="")
    # h
    command: |-
      a
      b
    x: '#'
    """
    comments = "".join(f"# {h}\n" for h in header)
    for dumper, unicode in ((_Dumper, True), (yaml.SafeDumper, True), (yaml.SafeDumper, False)):
        text = comments + yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=unicode,
                                    default_flow_style=False, width=100)
        if yaml.safe_load(text) == doc:
            return text
    raise AssertionError("the YAML serializer wrote a document that reads back differently")


def secret_sets(loaded: Loaded, name: str) -> list[str]:
    """Quoted ``--set`` words that fill in, at submission, the env values that hold a
    secret (the YAML keeps the ${NAME} reference)."""
    job = loaded.project.jobs[name]
    static = static_params(loaded, name)
    secrets = set(loaded.project.secrets)
    out: list[str] = []
    for key, value in merged_env(loaded, job).items():
        if set(var_refs(value)) & secrets:
            out += ["--set", word(parse_text(f"environment_variables.{key}={value}")[0], static)]
    return out


def scope_args(cl: AzuremlCluster) -> list[str]:
    """Quoted words naming the workspace in every az call (secrets as ${NAME}), each as
    ``--flag=VALUE``: one word, which az never reads as an option whatever VALUE (a secret
    read at run time) starts with."""
    out: list[str] = []
    for flag, value in (("--resource-group", cl.resource_group),
                        ("--workspace-name", cl.workspace), ("--subscription", cl.subscription)):
        if value is not None:
            out.append(word(parse_text(f"{flag}={value}")[0], {}))
    return out


def plan(loaded: Loaded, cname: str) -> list[Group]:
    """A group per job of cluster ``cname`` (its YAML files and point table), and one for
    the cluster's scripts."""
    names = [n for n, j in loaded.project.jobs.items() if j.cluster == cname]
    out = [Group(f"azureml/{cname}/{name}", ("jobs", name),
                 tuple(_job_files(loaded, cname, name))) for name in names]
    if names:
        out.append(Group(f"azureml/{cname}", ("clusters", cname),
                         tuple(_cluster_files(loaded, cname, names))))
    return out


def _job_files(loaded: Loaded, cname: str, name: str) -> list[FileSpec]:
    points = PointDocs(loaded, name)
    header = file_header(loaded.source.file, name)
    lines = ["# " + " ".join(header),
             "# index\tpoint\tAzure ML job names start with\tjob YAML\tits code folder"]
    out = []
    for i, key in enumerate(points.keys):
        path = yaml_path(name, key)
        pname = point_name(loaded.project.project, name, key)
        doc = points.document(i)
        lines.append("\t".join((str(i), tsv_cell(pname), aml_base(pname), path,
                                doc.get("code", "-"))))
        out.append(text_file(f"azureml/{cname}/{path}", render_yaml(header, doc)))
    return [text_file(f"azureml/{cname}/{name}.points.tsv", "\n".join(lines) + "\n"), *out]


def _job_summary(loaded: Loaded, name: str) -> dict[str, Any]:
    job = loaded.project.jobs[name]
    opts = options(job)
    return {"name": name, "size": loaded.points[name].size, "retries": job.retries,
            "sets": secret_sets(loaded, name), "nodes": opts.resources.nodes,
            "processes": processes(opts) or 1}


def _cluster_files(loaded: Loaded, cname: str, names: list[str]) -> list[FileSpec]:
    jobs = [_job_summary(loaded, name) for name in names]
    scope = scope_args(aml_cluster(loaded, cname))
    words = [*scope, *(w for j in jobs for w in j["sets"])]
    used = sorted({v for w in words for v in var_refs(w)} & set(loaded.project.secrets))
    context = {"header": file_header(loaded.source.file), "cluster_name": cname, "jobs": jobs,
               "project": loaded.project.project, "secrets": used, "scope": scope,
               "final": FINAL, "resubmit": RESUBMIT}
    return [*(FileSpec(f"azureml/{cname}/{s}", f"azureml/{s}.j2", plain_context(context),
                       executable=True, lint="shellcheck") for s in SCRIPTS),
            runtime_file(f"azureml/{cname}", "azureml", loaded.source.file)]
