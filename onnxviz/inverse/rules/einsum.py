"""Einsum: the vector-Jacobian product of each operand is another einsum (all modes).

For ``y = einsum(S₁,…,Sₙ → T)`` the gradient of operand ``i`` is
``einsum(T, S₁,…,Sᵢ₋₁,Sᵢ₊₁,…,Sₙ → Sᵢ)`` with ȳ in the place of y, other operands at their
forward values (constants, or forward tensors when both are on the path: the product rule).
Letters of ``Sᵢ`` found in no other term were summed by the forward alone, so the gradient is
constant along them: it is computed without them and expanded back.

The equation is first made explicit for the known ranks: the ellipsis becomes letters, and an
ellipsis axis of size 1 broadcast against a longer one gets a letter of its own (it is then summed,
which is what broadcasting's adjoint does). In the inverse ȳ carries K projections on the batch
axis where forward values carry 1, so the batch letter of every other operand is renamed apart:
each such axis has length 1 and is summed away.
"""

from __future__ import annotations

import string

import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import register


@register("Einsum")
def einsum_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        return [None] * len(node.input)
    equation = str(ctx.attr(node, "equation"))
    shapes = [ctx.shape(t) for t in node.input]
    terms, output, spare = explicit_equation(equation, shapes)
    result: list[str | None] = []
    for i, tensor in enumerate(node.input):
        if tensor not in ctx.graph.signal:
            result.append(None)
            continue
        mine = terms[i]
        if len(set(mine)) != len(mine):
            raise ctx.unsupported(node, f"operand {i} repeats a subscript (a diagonal), which is not supported")
        if not output or mine[0] != output[0]:
            raise ctx.unsupported(node, f"operand {i}'s batch axis is not the output's first axis")
        batch = output[0]
        inputs, subscripts = [g], ["".join(output)]
        for j, other in enumerate(node.input):
            if j == i:
                continue
            renamed = [next(spare) if letter == batch else letter for letter in terms[j]]
            inputs.append(ctx.forward(other))
            subscripts.append("".join(renamed))
        available = set("".join(subscripts))
        kept = [letter for letter in mine if letter in available]
        grad = ctx.op("Einsum", inputs, equation=f"{','.join(subscripts)}->{''.join(kept)}")
        if len(kept) != len(mine):
            missing = [axis for axis, letter in enumerate(mine) if letter not in available]
            grad = ctx.op("Unsqueeze", [grad, ctx.ints(missing, "axes")])
            grad = ctx.op("Expand", [grad, ctx.ints([1, *ctx.sample_shape(tensor)])])
        result.append(grad)
    return result


def explicit_equation(equation: str, shapes: list[tuple[int, ...]]):
    """(letters per operand, output letters, an iterator of unused letters) with no ellipsis and
    no implicit output, every broadcast axis of length 1 given a letter of its own."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    raw_terms = lhs.split(",")
    spare = iter([c for c in string.ascii_letters if c not in equation])
    widths = [len(shape) - len(term.replace("...", "")) for term, shape in zip(raw_terms, shapes, strict=True)]
    ellipsis_width = max([w for term, w in zip(raw_terms, widths, strict=True) if "..." in term], default=0)
    ellipsis = [next(spare) for _ in range(ellipsis_width)]
    terms = [_expand(term, ellipsis, width) for term, width in zip(raw_terms, widths, strict=True)]
    if arrow:
        output = _expand(rhs, ellipsis, ellipsis_width)
    else:
        once = sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1)
        output = [*ellipsis, *once]
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        for letter, size in zip(term, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), size)
    for term, shape in zip(terms, shapes, strict=True):
        for axis, (letter, size) in enumerate(zip(term, shape, strict=True)):
            if letter in ellipsis and size == 1 and sizes[letter] != 1:
                term[axis] = next(spare)
    return terms, output, spare


def _expand(term: str, ellipsis: list[str], width: int) -> list[str]:
    if "..." not in term:
        return list(term)
    before, after = term.split("...")
    return [*before, *ellipsis[len(ellipsis) - width :], *after]
