"""The JSON Schema of project.yaml, generated from the models.

Editors use it for completion and checks as they type (the YAML language server reads the
``# yaml-language-server: $schema=...`` line). It is looser than jobpack's own checks in one
way: a job may take the keys of every cluster kind here, since the kind is known only from
the cluster the job names; jobpack itself refuses a key of another kind.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from .project import model as m
from .project.validate import Kinds

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_COMMAND = {"description": "Shell code (a string), or an argv list of strings.",
            "anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "items": {"type": "string"}, "minItems": 1}]}


def project_schema(kinds: Kinds) -> dict[str, Any]:
    """The schema of a project file whose clusters are of ``kinds``."""
    root = _schema(m.Project, "")
    defs: dict[str, Any] = root.pop("$defs", {})
    props = root["properties"]
    clusters: list[dict[str, Any]] = []
    options: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds.supported.values():
        cluster = _schema(kind.cluster_model, f"{kind.name}.")
        defs.update(cluster.pop("$defs", {}))
        cluster["properties"]["kind"] = {"const": kind.name,
                                         "description": f"A {kind.name} cluster."}
        cluster["required"] = sorted({*cluster.get("required", []), "kind"})
        defs[f"{kind.name}.Cluster"] = cluster
        clusters.append({"$ref": f"#/$defs/{kind.name}.Cluster"})
        opts = _schema(kind.options_model, f"{kind.name}.")
        defs.update(opts.pop("$defs", {}))
        for key, value in opts.get("properties", {}).items():
            value = dict(value)
            value["description"] = (value.get("description", "") +
                                    f" (jobs on {kind.name} clusters)").strip()
            options.setdefault(key, []).append(value)
    props["clusters"] = {"type": "object", "description": "The clusters jobs run on, by name.",
                         "additionalProperties": {"oneOf": clusters}}
    job = defs["Job"]
    job["properties"]["command"] = _COMMAND
    job["properties"].pop("options", None)
    for key, variants in sorted(options.items()):
        if key not in job["properties"]:
            job["properties"][key] = variants[0] if len(variants) == 1 else {
                "anyOf": variants}
    job["additionalProperties"] = False
    for key, section in sorted(kinds.sections.items()):
        entry = {} if section.entry_model is None else _schema(section.entry_model, f"{key}.")
        defs.update(entry.pop("$defs", {}))
        if section.entry_model is not None:
            defs[f"{key}.Entry"] = entry
        props[key] = {"type": "object", "description": (section.__doc__ or "").strip(),
                      "additionalProperties": {"$ref": f"#/$defs/{key}.Entry"}
                      if section.entry_model is not None else True}
    root["additionalProperties"] = False
    root.update({"$schema": DRAFT, "title": "jobpack project.yaml", "$defs": defs})
    return {"$schema": root.pop("$schema"), **root}


def _schema(model: type[BaseModel], prefix: str) -> dict[str, Any]:
    """The model's schema (by alias, as project.yaml spells keys, for validation), its
    definitions renamed with ``prefix`` so that two kinds' models of one name do not
    clash."""
    schema = copy.deepcopy(model.model_json_schema(by_alias=True, mode="validation"))
    if not prefix:
        return schema
    names = {name: prefix + name for name in schema.get("$defs", {})}
    schema["$defs"] = {names[k]: v for k, v in schema.get("$defs", {}).items()}
    renamed: dict[str, Any] = _renamed(schema, names)
    return renamed


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _renamed(v, names) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/$defs/" + names.get(ref[len("#/$defs/"):], ref[len("#/$defs/"):])
        return out
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    return value
