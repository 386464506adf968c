"""Amounts of CPU, memory and storage: Kubernetes quantities, and Colonies' own forms of them (pure).

One reader for every quantity the operator meets: a resource's limits and defaults, a Node's capacity, a
process's conditions. Kubernetes quantities are read exactly (a Fraction), so comparisons never round. Colonies
reads `conditions.cpu` only as millicores and `conditions.mem` as a whole number with a unit of its own
spelling; those forms are translated to the Kubernetes quantity a container asks for.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$")
_SUFFIX = {"": 1, "n": Fraction(1, 10 ** 9), "u": Fraction(1, 10 ** 6), "m": Fraction(1, 1000), "k": 10 ** 3,
           "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20,
           "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}

# Colonies' forms: cpu "500m" (its scheduler maps any other form to 0), memory a whole number with a unit it
# spells in several ways, each mapped to the Kubernetes suffix of the same size.
_COLONIES_CPU = re.compile(r"^(\d+)m$")
_COLONIES_MEMORY = re.compile(r"^(\d+)(Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB|K|KB|Kb|k|M|MB|Mb|G|GB|Gb|T|TB|Tb)?$")
_COLONIES_MEMORY_UNITS = {
    "": "", "Ki": "Ki", "KiB": "Ki", "Mi": "Mi", "MiB": "Mi", "Gi": "Gi", "GiB": "Gi", "Ti": "Ti", "TiB": "Ti",
    "K": "k", "KB": "k", "Kb": "k", "k": "k", "M": "M", "MB": "M", "Mb": "M", "G": "G", "GB": "G", "Gb": "G",
    "T": "T", "TB": "T", "Tb": "T",
}


def parse_quantity(value: Any) -> Fraction:
    """A Kubernetes quantity ("500m", "2", "256Mi", "1.5G", "1e3", or a number) as an exact amount; raises
    ValueError for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    match = _QUANTITY.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{str(value)[:40]!r} is not a Kubernetes quantity (e.g. 500m, 2, 256Mi, 1Gi)")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def amount_or_zero(value: Any) -> Fraction:
    """A quantity the API server reports (a Node's capacity): its amount, or 0 when absent."""
    if value is None:
        return Fraction(0)
    try:
        return parse_quantity(value)
    except ValueError:
        return Fraction(0)


def cpu_from_conditions(value: Any) -> str | None:
    """Colonies' conditions.cpu as the container's CPU quantity; None when absent or zero. Raises ValueError."""
    if value in ("", None, "0m", "0"):
        return None
    match = _COLONIES_CPU.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{str(value)[:50]!r} is not understood: give millicores, e.g. \"500m\" (Colonies reads "
                         "only this form)")
    millicores = int(match.group(1))
    return f"{millicores}m" if millicores else None


def memory_from_conditions(value: Any) -> str | None:
    """Colonies' conditions.mem or .storage as a Kubernetes quantity; None when absent or zero. Raises
    ValueError."""
    if value in ("", None):
        return None
    match = _COLONIES_MEMORY.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{str(value)[:50]!r} is not understood: give a whole number with a unit, e.g. \"256Mi\" "
                         "or \"2Gi\"")
    amount = int(match.group(1))
    return f"{amount}{_COLONIES_MEMORY_UNITS[match.group(2) or '']}" if amount else None
