"""MANIFEST.sha256: the digest of every file of the bundle."""

from __future__ import annotations


def manifest(header: list[str], digests: dict[str, str]) -> str:
    """``sha256sum``-format lines for every file, sorted; ``sha256sum -c`` checks them.

    >>> print(manifest(["h"], {"b": "2" * 64, "a": "1" * 64}), end="")
    # h
    1111111111111111111111111111111111111111111111111111111111111111  a
    2222222222222222222222222222222222222222222222222222222222222222  b
    """
    lines = ["# " + " ".join(header)]
    lines += [f"{digests[p]}  {p}" for p in sorted(digests) if p != "MANIFEST.sha256"]
    return "\n".join(lines) + "\n"
