"""Container image references and the patterns an admin allows (pure).

A reference is normalized the way the kubelet pulls it, so `busybox:1.35` and `docker.io/library/busybox:1.35` are
the same image to every allowed-images list.
"""

from __future__ import annotations

import re

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*"
                     r"|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$")
_REMAINDER = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
                        r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")


def _split_domain(reference: str) -> tuple[str, str]:
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return "docker.io", reference


def normalize_image(image: str) -> str:
    """The full reference the kubelet pulls: `busybox:1.35` is `docker.io/library/busybox:1.35`, a name without
    tag or digest gets `:latest`. Raises ValueError for what is not an image reference."""
    domain, remainder = _split_domain(image)
    if not _DOMAIN.match(domain) or not _REMAINDER.match(remainder):
        raise ValueError(f"{image[:100]!r} is not an image reference")
    if domain == "docker.io" and "/" not in remainder:
        remainder = f"library/{remainder}"
    name = remainder.split("@", 1)[0]
    if "@" not in remainder and ":" not in name:
        remainder += ":latest"
    return f"{domain}/{remainder}"


def _normalize_pattern(pattern: str) -> str:
    """Patterns are normalized like images where their first component is a plain name (`busybox:*`)."""
    domain, remainder = _split_domain(pattern)
    if domain != "docker.io" or pattern.startswith(("*", "docker.io/")):
        return pattern
    return f"docker.io/{remainder}" if "/" in remainder else f"docker.io/library/{remainder}"


def image_matches(image: str, pattern: str) -> bool:
    """`*` matches within one path component (not '/'), `**` matches anything; both sides normalized."""
    regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
                    for part in re.split(r"(\*\*|\*)", _normalize_pattern(pattern)))
    return re.fullmatch(regex, image) is not None
