"""Balanced reduction trees: the fewest logic levels for an OR or a sum of many terms."""

from __future__ import annotations

import operator
from typing import Callable

__all__ = ["reduce_tree", "or_tree", "sum_tree"]


def reduce_tree(terms: list, combine: Callable, empty=0):
    """``terms`` combined pairwise, level by level (``empty`` for none)."""
    if not terms:
        return empty
    while len(terms) > 1:
        terms = [combine(terms[i], terms[i + 1]) if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def or_tree(terms: list):
    """The OR of ``terms`` as a balanced tree (0 for none)."""
    return reduce_tree(terms, operator.or_)


def sum_tree(terms: list):
    """The sum of ``terms`` as a balanced tree (0 for none)."""
    return reduce_tree(terms, operator.add)
