"""Images: ``images/<name>/rehost.sh`` pulls an image and pushes it under each of its tags."""

from __future__ import annotations

from .base import Artifact, Context, Generator, Group, runtime_artifact
from .render import render
from .shell import shquote
from .validate import Loaded


class ImagesGenerator(Generator):
    name = "images"
    template_dirs = ("images", "_base", "_macros", "lib")

    def groups(self, loaded: Loaded, ctx: Context) -> list[Group]:
        out = []
        for name, image in loaded.project.images.items():
            if image.source is None:
                continue
            piece = {"image": image.model_dump(mode="json"), "name": name,
                     "file": ctx.project_file}
            out.append(Group(f"images/{name}", piece,
                             lambda name=name: self.render_image(loaded, ctx, name),  # type: ignore[misc]
                             ("images", name)))
        return out

    def render_image(self, loaded: Loaded, ctx: Context, name: str) -> list[Artifact]:
        image = loaded.project.images[name]
        context = {"header": ctx.header(), "name": name, "image": image,
                   "source": shquote(str(image.source)),
                   "tags": [shquote(t) for t in image.tags], "secrets": []}
        return [Artifact(f"images/{name}/rehost.sh", render(ctx.env, "images/rehost.sh.j2",
                                                             context),
                         executable=True, lint="shellcheck"),
                runtime_artifact(ctx, f"images/{name}", "images")]
