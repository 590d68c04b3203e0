"""Polynomials in the request's sizes, so an architecture's operator table is built once.

Every cost term of a transformer kernel is a polynomial in the batch ``B`` and the prompt length
``S`` (a GEMM over ``B*S`` tokens, a ``B*S*S`` score matrix), plus one term that is not: the number
of distinct MoE experts a step touches, carried as the opaque variable ``T``. Building the table
with these variables gives coefficients that a request turns into numbers with one matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping

Monomial = tuple[str, ...]  # sorted variable names; () is the constant


class Poly:
    """A polynomial with float coefficients; supports +, -, * and / by numbers, and * by Poly."""

    __slots__ = ("terms",)

    def __init__(self, terms: Mapping[Monomial, float]):
        self.terms = {m: c for m, c in terms.items() if c != 0.0}

    @staticmethod
    def var(name: str) -> "Poly":
        return Poly({(name,): 1.0})

    @staticmethod
    def lift(value: "Poly | float") -> "Poly":
        return value if isinstance(value, Poly) else Poly({(): float(value)})

    def __add__(self, other: "Poly | float") -> "Poly":
        terms = dict(self.terms)
        for m, c in Poly.lift(other).terms.items():
            terms[m] = terms.get(m, 0.0) + c
        return Poly(terms)

    __radd__ = __add__

    def __neg__(self) -> "Poly":
        return Poly({m: -c for m, c in self.terms.items()})

    def __sub__(self, other: "Poly | float") -> "Poly":
        return self + (-Poly.lift(other))

    def __rsub__(self, other: float) -> "Poly":
        return Poly.lift(other) - self

    def __mul__(self, other: "Poly | float") -> "Poly":
        if not isinstance(other, Poly):
            return Poly({m: c * other for m, c in self.terms.items()})
        terms: dict[Monomial, float] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(sorted(m1 + m2))
                terms[m] = terms.get(m, 0.0) + c1 * c2
        return Poly(terms)

    __rmul__ = __mul__

    def __truediv__(self, number: float) -> "Poly":
        return self * (1.0 / number)

    def value(self, variables: Mapping[str, float]) -> float:
        total = 0.0
        for m, c in self.terms.items():
            for name in m:
                c *= variables[name]
            total += c
        return total

    def __repr__(self) -> str:
        return " + ".join(f"{c:g}*{'*'.join(m) or '1'}" for m, c in sorted(self.terms.items())) or "0"
