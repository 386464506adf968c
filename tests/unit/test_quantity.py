"""Quantities: Kubernetes' (exact, strict), a Node's (absent or unreadable is 0), and Colonies' own forms of cpu
and memory in a process's conditions."""

from __future__ import annotations

from fractions import Fraction

import pytest

from colonies_operator.core.quantity import (
    amount_or_zero,
    cpu_from_conditions,
    memory_from_conditions,
    parse_quantity,
)


@pytest.mark.parametrize("text, amount", [
    ("1500m", "3/2"), ("4", "4"), (4, "4"), ("16318556Ki", "16710201344"), ("8Gi", "8589934592"),
    ("1e9", "1000000000"), ("2G", "2000000000"), ("1.5G", "1500000000"), (".5", "1/2"), ("250u", "1/4000"),
])
def test_a_kubernetes_quantity_is_read_exactly(text, amount):
    assert parse_quantity(text) == Fraction(amount)


@pytest.mark.parametrize("text", ["", "garbage", "-1", "1 Gi", "1GB", None, True])
def test_anything_else_is_refused_saying_what_a_quantity_looks_like(text):
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_binary_and_decimal_suffixes_compare_as_amounts():
    assert parse_quantity("1") == parse_quantity("1000m") and parse_quantity("1Gi") == parse_quantity("1024Mi")
    assert parse_quantity("1G") < parse_quantity("1Gi") and parse_quantity("1e3") == parse_quantity("1k")


@pytest.mark.parametrize("value, amount", [("16Gi", 16 * 2 ** 30), (None, 0), ("garbage", 0), (3, 3)])
def test_a_nodes_quantity_that_is_absent_or_unreadable_counts_as_zero(value, amount):
    assert amount_or_zero(value) == amount


@pytest.mark.parametrize("value, quantity", [("500m", "500m"), ("0500m", "500m"), ("", None), (None, None),
                                             ("0m", None), ("0", None), ("000m", None)])
def test_colonies_cpu_is_millicores(value, quantity):
    assert cpu_from_conditions(value) == quantity


@pytest.mark.parametrize("value", ["1", "0.5", "1.5m", "500 m", 500])
def test_colonies_cpu_in_another_form_is_refused_naming_the_form_colonies_reads(value):
    with pytest.raises(ValueError, match="give millicores"):
        cpu_from_conditions(value)


@pytest.mark.parametrize("value, quantity", [("256Mi", "256Mi"), ("256MiB", "256Mi"), ("2GB", "2G"), ("2Gb", "2G"),
                                             ("1KB", "1k"), ("100", "100"), ("0Mi", None), ("", None), (None, None)])
def test_colonies_memory_units_map_to_the_kubernetes_suffix_of_the_same_size(value, quantity):
    assert memory_from_conditions(value) == quantity


@pytest.mark.parametrize("value", ["1.5Gi", "Gi", "2 Gi", "2PB", 1024])
def test_colonies_memory_in_another_form_is_refused_with_an_example(value):
    with pytest.raises(ValueError, match="256Mi"):
        memory_from_conditions(value)
