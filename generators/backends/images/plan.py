"""Images: ``images/<name>/rehost.sh`` for every image with a source."""

from __future__ import annotations

from ...plan import FileSpec, Group, file_header, plain_context, runtime_file
from ...project.checker import Loaded
from ...shell import shquote


def plan(loaded: Loaded) -> list[Group]:
    """A group per image that has a source to rehost."""
    out = []
    for name, image in loaded.project.images.items():
        if image.source is None:
            continue
        context = plain_context({"header": file_header(loaded.source.file), "name": name,
                         "image": image, "source": shquote(str(image.source)),
                         "tags": [shquote(t) for t in image.tags], "secrets": []})
        spec = FileSpec(f"images/{name}/rehost.sh", "images/rehost.sh.j2", context,
                        executable=True, lint="shellcheck")
        lib = runtime_file(f"images/{name}", "images", loaded.source.file)
        out.append(Group(f"images/{name}", ("images", name), (spec, lib)))
    return out
