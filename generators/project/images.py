"""Images of the project: their checks, and the reference a job that names one runs.

An image is rehosted (``source``: pulled, tagged, pushed) or built (``dockerfile``: a build
spec jobpack writes a Dockerfile for); either way it is pushed to its ``tags``. A job of any
cluster kind may name it in its ``image`` key and runs one of those tags (``image_ref``).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from ..loader import Loc
from . import model as m
from .checker import Checker, suggest

# A reference as the container tools parse it (github.com/distribution/reference): an
# optional registry (a host name with a dot or a port, or localhost), lowercase path
# components, an optional tag, an optional digest.
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_REGISTRY = re.compile(rf"{_HOST}(?::[0-9]{{1,5}})?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
EXAMPLE = "e.g. nvcr.io/ORG/REPO:TAG"

# Debian package names and versions (apt-get install NAME or NAME=VERSION).
APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
APT_RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
APT_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*(?::[A-Za-z0-9.+~-]+)*")
# What pip install takes here: NAME, NAME[EXTRA,...], and version clauses joined by commas
# (PEP 508 without spaces, URLs or environment markers).
_PIP_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIP_OP = r"(?:~=|===|==|!=|<=|>=|<|>)"
_PIP_VERSION = r"[A-Za-z0-9_.*+!-]+"
PIP_SPEC = re.compile(rf"(?P<name>{_PIP_NAME})(?:\[{_PIP_NAME}(?:,{_PIP_NAME})*\])?"
                      rf"(?P<pins>{_PIP_OP}{_PIP_VERSION}(?:,{_PIP_OP}{_PIP_VERSION})*)?")
# A user the image runs as: a login name (created with useradd), or UID[:GID].
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
USER_ID = re.compile(r"[0-9]+(?::[0-9]+)?")
# A platform to build for, as docker and podman take it: OS/ARCH[/VARIANT].
PLATFORM = re.compile(r"[a-z0-9_]+/[a-z0-9_]+(?:/[a-z0-9_]+)?")
MAX_ID = 2**31 - 1
# Characters a path of the project may not hold when it is copied into an image: wildcards
# and the escape character of Dockerfile sources and .dockerignore patterns.
_PATTERN_CHARS = re.compile(r"[*?\[\]\\]")
_MOUNT_PATH = re.compile(r"[A-Za-z0-9._+/-]+")


def reference_problem(ref: str, *, push: bool = False) -> str | None:
    """Why ``ref`` is not an image reference (None when it is); ``push``: a reference to push
    to, which cannot be a digest.

    >>> reference_problem("nvcr.io/nvidia/pytorch:24.01-py3") is None
    True
    >>> reference_problem("localhost:5000/a/b@sha256:" + "0" * 64) is None
    True
    >>> reference_problem("Kyle/zoo:v1")
    "'Kyle/zoo:v1': a repository name is lowercase (e.g. nvcr.io/ORG/REPO:TAG)"
    >>> reference_problem("a/b@sha256:" + "0" * 64, push=True).split(":")[0]
    "'a/b@sha256"
    """
    shown = f"{ref!r} is not an image reference ({EXAMPLE})"
    name, _, digest = ref.partition("@")
    head, sep, rest = name.partition("/")
    registry = sep and ("." in head or ":" in head or head == "localhost")
    path = rest if registry else name
    if registry and not _REGISTRY.fullmatch(head):
        return shown
    last = path.rsplit("/", 1)[-1]
    repo, colon, tag = path.rpartition(":") if ":" in last else (path, "", "")
    if colon and not _TAG.fullmatch(tag):
        return f"{ref!r}: the tag {tag!r} is not one ({EXAMPLE}; at most 128 letters, digits, " \
               "'_', '.' and '-')"
    if digest and not _DIGEST.fullmatch(digest):
        return f"{ref!r}: a digest is sha256: and 64 lowercase hex digits (or sha512: and 128)"
    if not _PATH.fullmatch(repo):
        if _PATH.fullmatch(repo.lower()):
            return f"{ref!r}: a repository name is lowercase ({EXAMPLE})"
        return shown
    if len(name) > 255:
        return f"{ref!r} is too long (a name of at most 255 characters)"
    if push and digest:
        return f"{ref!r}: an image is pushed to a tag, not to a digest ({EXAMPLE})"
    return None


def _pinned_base(ref: str) -> bool:
    """Whether a base image names a fixed version: a digest, or a tag other than latest.

    >>> [_pinned_base(r) for r in ("a/b:1", "a/b", "a/b:latest", "localhost:5000/a", "scratch")]
    [True, False, False, False, True]
    """
    if ref == "scratch" or "@" in ref:
        return True
    last = ref.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] != "latest"


def _explicit_tag(ref: str) -> bool:
    """Whether ``ref`` ends in a tag other than latest.

    >>> [_explicit_tag(r) for r in ("a/b:1", "a/b", "a/b:latest", "localhost:5000/a")]
    [True, False, False, False]
    """
    last = ref.partition("@")[0].rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] != "latest"


def check_image(ck: Checker, loc: Loc, image: m.Image, secrets: Iterable[str]) -> None:
    """Report what is wrong with an image: its references, and its build spec."""
    if image.source is not None and image.dockerfile is not None:
        ck.add(loc, "give source (an image to rehost) or dockerfile (an image to build), not "
               "both")
    if image.source is not None and (problem := reference_problem(image.source)):
        ck.add((*loc, "source"), problem)
    seen: set[str] = set()
    for i, tag in enumerate(image.tags):
        if problem := reference_problem(tag, push=True):
            ck.add((*loc, "tags", i), problem)
        elif image.dockerfile is not None and not _explicit_tag(tag):
            ck.add((*loc, "tags", i), f"{tag!r}: give the tag explicitly, other than latest "
                   "(e.g. nvcr.io/ORG/REPO:v1), so that a rebuild pushed there names its version")
        elif tag in seen:
            ck.add((*loc, "tags", i), f"tag {tag!r} is listed twice")
        seen.add(tag)
    if image.source is not None and not image.tags:
        ck.add(loc, "an image with a source needs tags to push it to")
    if image.dockerfile is not None:
        if not image.tags:
            ck.add(loc, "an image with a dockerfile needs tags to build and push it as")
        _check_build(ck, (*loc, "dockerfile"), image.dockerfile, set(secrets))


def _check_build(ck: Checker, loc: Loc, spec: m.ImageBuild, secrets: set[str]) -> None:
    if problem := reference_problem(spec.from_):
        ck.add((*loc, "from"), problem)
    elif not _pinned_base(spec.from_):
        ck.add((*loc, "from"), f"{spec.from_!r}: pin the base image with a tag other than "
               "latest, or a digest (e.g. nvcr.io/nvidia/pytorch:24.01-py3), so that a rebuild "
               "starts from the same image")
    _packages(ck, (*loc, "apt"), spec.apt, apt_problem, lambda p: re.split("[=/]", p)[0])
    _packages(ck, (*loc, "pip"), spec.pip, pip_problem, pip_name)
    if spec.requirements is not None:
        if not _MOUNT_PATH.fullmatch(spec.requirements):
            ck.add((*loc, "requirements"), f"{spec.requirements!r}: a requirements file is "
                   "named with letters, digits, '.', '_', '-', '+' and '/' only (the build "
                   "mounts it for pip, and the mount's options take no other characters)")
        else:
            project_path(ck, (*loc, "requirements"), spec.requirements, "requirements file",
                         regular=True)
    for i, item in enumerate(spec.copy_):
        project_path(ck, (*loc, "copy", i, "from"), item.from_, "copy source")
        if not item.to.startswith("/"):
            ck.add((*loc, "copy", i, "to"), f"{item.to!r}: a path in the image is absolute "
                   "(e.g. /workspace/src)")
    _check_runtime(ck, loc, spec)
    _env(ck, (*loc, "env"), spec.env, secrets)


def _check_runtime(ck: Checker, loc: Loc, spec: m.ImageBuild) -> None:
    """The working folder, entrypoint, user, platform and ports of an image."""
    if spec.workdir is not None and not spec.workdir.startswith("/"):
        ck.add((*loc, "workdir"), f"{spec.workdir!r}: the working folder is an absolute path "
               "(e.g. /workspace)")
    if spec.entrypoint is not None and not (spec.entrypoint and spec.entrypoint[0]):
        ck.add((*loc, "entrypoint"), "an entrypoint is a program and its arguments: a "
               "non-empty list whose first item names the program")
    if spec.user is not None and (problem := user_problem(spec.user)):
        ck.add((*loc, "user"), problem)
    if spec.platform is not None and not PLATFORM.fullmatch(spec.platform):
        ck.add((*loc, "platform"), f"{spec.platform!r} is not a platform: OS/ARCH or "
               "OS/ARCH/VARIANT in lowercase (e.g. linux/amd64, linux/arm64/v8)")
    for i, port in enumerate(spec.ports):
        if not 1 <= port <= 65535:
            ck.add((*loc, "ports", i), f"{port}: a port is a number from 1 to 65535")
        elif port in spec.ports[:i]:
            ck.add((*loc, "ports", i), f"port {port} is listed twice")


def _packages(ck: Checker, loc: Loc, packages: list[str],
              problem_of: Callable[[str], str | None], name_of: Callable[[str], str]) -> None:
    seen: set[str] = set()
    for i, package in enumerate(packages):
        if problem := problem_of(package):
            ck.add((*loc, i), problem)
            continue
        name = name_of(package)
        if name in seen:
            ck.add((*loc, i), f"package {name!r} is listed twice")
        seen.add(name)


def apt_problem(package: str) -> str | None:
    """Why ``package`` is not what ``apt-get install`` takes here: NAME, NAME=VERSION, or
    NAME/RELEASE (the version of a release, such as bookworm-backports).

    >>> apt_problem("curl=7.88.1-10+deb12u5") is None, apt_problem("curl==7.88")
    (True, "'curl==7.88': apt pins a version with one '=' (e.g. curl=7.88)")
    >>> apt_problem("git/bookworm-backports") is None, apt_problem("git/") is None
    (True, False)
    """
    if "/" in package and "=" not in package:
        name, _, release = package.partition("/")
        if APT_NAME.fullmatch(name) and not APT_RELEASE.fullmatch(release):
            return f"{package!r}: {release!r} is not a release name (e.g. {name}/" \
                   "bookworm-backports)"
        if APT_NAME.fullmatch(name):
            return None
    name, eq, version = package.partition("=")
    if version.startswith("="):
        return f"{package!r}: apt pins a version with one '=' (e.g. {name}={version[1:]})"
    if not APT_NAME.fullmatch(name):
        near = re.split(r"[<>~!]", name)[0]
        if near != name and APT_NAME.fullmatch(near):
            return f"{package!r}: apt installs an exact version only (NAME=VERSION)"
        return f"{package!r} is not a Debian package name (lowercase letters, digits, '+', " \
               "'-' and '.'), optionally with =VERSION"
    if eq and not version:
        return f"{package!r}: no version after '=' (e.g. {name}=1.2-1)"
    if eq and not APT_VERSION.fullmatch(version):
        return f"{package!r}: {version!r} is not a Debian version (e.g. 1.2-1 or 1:2.3~rc1-4)"
    return None


def pip_name(spec: str) -> str:
    """The normalized name of a requirement (PEP 503).

    >>> pip_name("Foo_Bar[x]>=1")
    'foo-bar'
    """
    match = re.match(_PIP_NAME, spec)
    return re.sub(r"[-_.]+", "-", match.group(0) if match else spec).lower()


def pip_problem(spec: str) -> str | None:
    """Why ``spec`` is not a requirement ``pip install`` takes here.

    >>> pip_problem("tqdm==4.66.4") is None, pip_problem("torch>=2,<3") is None
    (True, True)
    >>> pip_problem("tqdm=4.66.4")
    "'tqdm=4.66.4': pip pins a version with '==' (e.g. tqdm==4.66.4)"
    """
    if PIP_SPEC.fullmatch(spec):
        return None
    single = re.fullmatch(rf"({_PIP_NAME})=([^=<>!~].*)", spec)
    if single:
        return f"{spec!r}: pip pins a version with '==' (e.g. {single[1]}=={single[2]})"
    if missing := re.search(rf"({_PIP_OP})(,|$)", spec):
        return f"{spec!r}: a version is missing after {missing[1]!r}"
    if spec.startswith("-"):
        return f"{spec!r}: pip options are not packages (set an index with PIP_INDEX_URL in " \
               "env)"
    return f"{spec!r} is not a requirement pip takes here: NAME or NAME[EXTRAS] with versions " \
           "such as ==1.2 or >=1,<2, without spaces (no URLs, paths or markers: put those in " \
           "a requirements file)"


def user_problem(user: str | int) -> str | None:
    """Why ``user`` is not a non-root user an image can run as.

    >>> user_problem("app") is None, user_problem(1000) is None, user_problem("1000:1000") is None
    (True, True, True)
    >>> user_problem("00:1000") == user_problem("root")
    True
    >>> user_problem("root")
    "the user an image runs as is not root (give a login name such as 'app', or a UID)"
    """
    text = str(user)
    if text == "root" or (USER_ID.fullmatch(text) and int(text.split(":")[0]) == 0):
        return "the user an image runs as is not root (give a login name such as 'app', or a UID)"
    if USER_ID.fullmatch(text):
        if any(int(n) > MAX_ID for n in text.split(":")):
            return f"{text!r}: a user or group id is at most {MAX_ID}"
        return None
    if isinstance(user, int) or not USER_NAME.fullmatch(text):
        return f"{text!r} is not a login name (at most 32 lowercase letters, digits, '_' and " \
               "'-', not starting with a digit or '-') or a UID[:GID]"
    return None


def bad_char(value: str) -> str | None:
    r"""The first character of ``value`` that would break a Dockerfile line: a control
    character other than a tab, or a line or paragraph separator (None when there is none).

    >>> bad_char("a\tb ü"), bad_char("a\rb")
    (None, '\r')
    """
    return next((ch for ch in value if ch != "\t" and unicodedata.category(ch) in (
        "Cc", "Zl", "Zp")), None)


_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"
                        r"|\$")


def env_parts(value: str) -> list[tuple[str, bool]]:
    """An image env value as (text, is_reference) parts: ``$NAME`` and ``${NAME}`` name a
    variable the builder expands (as Dockerfile ENV does); ``$$`` is one literal ``$``; any
    other ``$`` is literal.

    >>> env_parts("/opt/bin:$PATH $$x ${A}$(y) $1")
    [('/opt/bin:', False), ('PATH', True), (' $x ', False), ('A', True), ('$(y) $1', False)]
    """
    parts: list[tuple[str, bool]] = []
    at = 0
    for match in _REFERENCE.finditer(value):
        name = match[1] or match[2]
        text = value[at:match.start()] + ("" if name else "$")
        at = match.end()
        if text and parts and not parts[-1][1]:
            parts[-1] = (parts[-1][0] + text, False)
        elif text:
            parts.append((text, False))
        if name:
            parts.append((name, True))
    if at < len(value):
        if parts and not parts[-1][1]:
            parts[-1] = (parts[-1][0] + value[at:], False)
        else:
            parts.append((value[at:], False))
    return parts


def _env(ck: Checker, loc: Loc, env: dict[str, m.Scalar], secrets: set[str]) -> None:
    for key, value in env.items():
        if not re.fullmatch(m.ENV_NAME, key):
            ck.add((*loc, key), f"{key!r} is not a valid environment variable name", key=True)
        if key in secrets:
            ck.add((*loc, key), f"{key!r} is a secret; a secret is never baked into an image "
                   "(the image is pushed to a registry): give it to the job at run time",
                   key=True)
            continue
        text = m._scalar_text(value)
        bad = bad_char(text)
        if bad is not None and bad != "\x00":  # NUL: refused for every string already
            what = {"\n": "a newline", "\r": "a carriage return"}.get(bad, "a control character")
            ck.add((*loc, key), f"the value holds {what} (U+{ord(bad):04X}): a Dockerfile ENV "
                   "value is one line, of printable characters and tabs")
        for name in sorted(secrets & set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))):
            ck.add((*loc, key), f"'{name}' is a secret; a secret is never baked into an image "
                   "(the image is pushed to a registry): give it to the job at run time")
        names = {part for part, ref in env_parts(text) if ref}
        for name in sorted((names & set(env)) - {key} - secrets):
            ck.add((*loc, key), f"${name} names another key of this env; a value sees the "
                   "variables of the base image (and its own old value), not the others set "
                   "here (write $$ for a literal $)")


def project_path(ck: Checker, loc: Loc, rel: str, what: str, *,
                 regular: bool = False) -> str | None:
    """``rel`` as a path inside the project folder (relative, normalized), after checking
    that it names a file or folder there (a regular file when ``regular``); None after
    reporting why not. The path becomes an input of the build."""
    if _PATTERN_CHARS.search(rel):
        ck.add(loc, f"{rel!r}: a {what} is a path, without wildcards or backslashes")
        return None
    if rel != rel.strip():
        ck.add(loc, f"{rel!r}: a {what} does not start or end with a space")
        return None
    norm = posixpath.normpath(rel)
    if rel.startswith("/") or norm == ".." or norm.startswith("../"):
        ck.add(loc, f"{rel!r}: a {what} is a path inside the project folder, relative to the "
               "project file")
        return None
    if norm == ".":
        ck.add(loc, "name the files and folders to copy, not the whole project folder (it holds "
               "the bundle and maybe secrets.env)")
        return None
    path = Path(ck.root) / norm
    try:
        real = Path(os.path.realpath(path))
        inside = real.is_relative_to(os.path.realpath(ck.root))
        mode = real.stat().st_mode if inside else 0
    except FileNotFoundError:
        ck.add(loc, f"{what} {rel!r} was not found (paths are relative to the project file)")
        return None
    except OSError as exc:
        ck.add(loc, f"{what} {rel!r} cannot be read: {exc.strerror or exc}")
        return None
    if not inside:
        ck.add(loc, f"{rel!r}: a {what} is a path inside the project folder; this one leads out "
               "of it through a symbolic link")
        return None
    root = Path(os.path.realpath(ck.root))
    if problem := _kind_problem(real, mode, regular, what, rel, root):
        ck.add(loc, problem)
        return None
    ck.inputs.append(path)
    return norm


# What an image may not hold: secrets, a bundle (its folders hold secrets.env; it has a
# MANIFEST.sha256) and jobpack's state folder.
SECRETS_FILE = "secrets.env"
_BUNDLE_MARK = "MANIFEST.sha256"
_STATE = ".jobpack"


def _private(real: Path, root: Path) -> str | None:
    """How the file or folder ``real`` (inside ``root``) holds secrets or a bundle, or None."""
    for folder in [real, *real.parents]:
        if folder == root:
            break
        if folder.name in (SECRETS_FILE, _STATE) or (folder / _BUNDLE_MARK).is_file():
            return "is a secrets file, a bundle or state" if folder == real else \
                f"is inside {folder.relative_to(root).as_posix()!r}, a bundle or state folder"
    if real.is_dir():
        for here, dirs, files in os.walk(real):
            if SECRETS_FILE in files or _BUNDLE_MARK in files or _STATE in dirs:
                inner = Path(here).relative_to(root).as_posix()
                return f"holds a secrets file, a bundle or state (in {inner!r})"
            dirs.sort()
    return None


def _kind_problem(real: Path, mode: int, regular: bool, what: str, rel: str,
                  root: Path) -> str | None:
    """Why the file or folder ``real`` of the project cannot go into an image, or None."""
    if regular and not stat.S_ISREG(mode):
        return f"{what} {rel!r} is not a regular file"
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return f"{what} {rel!r} is neither a file nor a folder"
    if private := _private(real, root):
        return f"{what} {rel!r} {private}: an image never holds secrets or a bundle (the " \
               "image is pushed to a registry); name the files and folders it needs"
    return None


def check_job_image(ck: Checker, loaded_images: dict[str, m.Image], loc: Loc,
                    value: str) -> None:
    """A job's ``image``: the name of an image of the project that has tags, or a reference
    (a bare name that is neither is reported as an unknown image)."""
    if value in loaded_images:
        if not loaded_images[value].tags:
            ck.add(loc, f"image {value!r} has no tags to launch from")
    elif re.fullmatch(m.NAME, value) and "/" not in value and ":" not in value:
        ck.add(loc, f"unknown image {value!r}{suggest(value, loaded_images)}; name one in "
               f"'images' or give a reference such as nvcr.io/ORG/REPO:TAG")


def image_ref(project: m.Project, value: str, prefer: Iterable[str] = ()) -> str:
    """The reference a job whose ``image`` is ``value`` runs: for an image of the project,
    the first of its tags under a registry of ``prefer`` (prefixes such as 'nvcr.io/'), else
    its first tag; any other value as it is.

    >>> p = m.Project.model_validate({"project": "p", "images": {"zoo": {"source": "a:1",
    ...     "tags": ["docker.io/a/zoo:1", "nvcr.io/o/zoo:1"]}}})
    >>> image_ref(p, "zoo"), image_ref(p, "zoo", ["nvcr.io/"]), image_ref(p, "b/c:2")
    ('docker.io/a/zoo:1', 'nvcr.io/o/zoo:1', 'b/c:2')
    """
    image = project.images.get(value)
    if image is None or not image.tags:
        return value
    prefixes = tuple(prefer)
    return next((t for t in image.tags if prefixes and t.startswith(prefixes)), image.tags[0])

