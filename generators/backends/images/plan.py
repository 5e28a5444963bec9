"""Images: ``images/<name>/rehost.sh`` for an image with a source; for an image with a
dockerfile, its ``Dockerfile``, ``Dockerfile.dockerignore``, ``build.sh``, ``push.sh`` and,
when asked, the ``run.sh`` helper the image carries."""

from __future__ import annotations

import posixpath
import re

from ...plan import FileSpec, Group, file_header, plain_context, runtime_file
from ...project import model as m
from ...project.checker import Loaded
from ...shell import Safe, shquote
from . import dockerfile


def plan(loaded: Loaded) -> list[Group]:
    """A group per image: the files that rehost it, or those that build and push it."""
    out = []
    for name, image in loaded.project.images.items():
        folder = f"images/{name}"
        if image.dockerfile is not None:
            specs = build_files(loaded, name, image, image.dockerfile)
        elif image.source is not None:
            specs = [rehost_file(loaded, name, image)]
        else:
            continue
        lib = runtime_file(folder, "images", loaded.source.file)
        out.append(Group(folder, ("images", name), (*specs, lib)))
    return out


def rehost_file(loaded: Loaded, name: str, image: m.Image) -> FileSpec:
    context = plain_context({"header": file_header(loaded.source.file), "name": name,
                             "image": image, "source": shquote(str(image.source)),
                             "tags": [shquote(t) for t in image.tags], "secrets": []})
    return FileSpec(f"images/{name}/rehost.sh", "images/rehost.sh.j2", context,
                    executable=True, lint="shellcheck")


def sent(spec: m.ImageBuild) -> list[str]:
    """The paths of the project the build sends to the builder: what the image copies.

    >>> sent(m.ImageBuild.model_validate({"from": "a:1", "requirements": "./r.txt",
    ...      "copy": [{"from": "src/", "to": "/w"}, {"from": "r.txt", "to": "/r"}]}))
    ['r.txt', 'src']
    """
    paths = [c.from_ for c in spec.copy_]
    paths += [spec.requirements] if spec.requirements is not None else []
    return sorted({posixpath.normpath(p) for p in paths})


def ignore_pattern(path: str) -> Safe:
    r"""A .dockerignore pattern that matches ``path`` alone. The checks keep wildcards and
    backslashes out of the paths an image copies; the regular expression characters are
    escaped too, as older builders (podman 4) turn a pattern into a regular expression with
    only '.' and '$' escaped.

    >>> print(ignore_pattern("data (v2)+x/a.txt"))
    data \(v2\)\+x/a.txt
    """
    return Safe(re.sub(r"([()+|^{}])", r"\\\1", path))


def build_files(loaded: Loaded, name: str, image: m.Image,
                spec: m.ImageBuild) -> list[FileSpec]:
    folder = f"images/{name}"
    header = file_header(loaded.source.file)
    keep = sent(spec)
    ignore = {"header": header, "name": name, "keep": [ignore_pattern(p) for p in keep]}
    scripts = plain_context({
        "header": header, "name": name, "description": image.description,
        "base": spec.from_, "tags": [shquote(t) for t in image.tags], "shown_tags": image.tags,
        "keep": [shquote(p) for p in keep], "shown_keep": keep, "helper": spec.run_helper,
        "platform": shquote(spec.platform) if spec.platform is not None else None,
        "shown_platform": spec.platform,
        "secrets": []})
    files = [
        FileSpec(f"{folder}/Dockerfile", "images/Dockerfile.j2",
                 plain_context(dockerfile.context(name, spec, header)), lint="hadolint"),
        FileSpec(f"{folder}/Dockerfile.dockerignore", "images/Dockerfile.dockerignore.j2",
                 plain_context(ignore)),
        FileSpec(f"{folder}/build.sh", "images/build.sh.j2", scripts, executable=True,
                 lint="shellcheck"),
        FileSpec(f"{folder}/push.sh", "images/push.sh.j2", scripts, executable=True,
                 lint="shellcheck"),
    ]
    if spec.run_helper:
        helper = {"header": header, "name": name, "path": dockerfile.HELPER}
        files.append(FileSpec(f"{folder}/run.sh", "images/run.sh.j2", helper,
                              executable=True, lint="shellcheck-sh"))
    return files
