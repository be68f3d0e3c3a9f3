"""Print AST nodes as canonical source text (``str(node)`` uses it).

The output parses back to an equal AST: parentheses are added exactly where
the grammar's precedence would otherwise regroup the tree. Layers, loosest
first, match grammar/cxrvqa.lark.
"""

from __future__ import annotations

from decimal import Decimal

from cxrvqa.lang import nodes as n

__all__ = ["format_node", "format_number", "program_blocks", "quote"]

_OR, _AND, _NOT, _COMPARE, _SET, _SUM, _PRODUCT, _POSTFIX, _ATOM = range(1, 10)
_LEVEL = {"or": _OR, "and": _AND, "=": _COMPARE, "!=": _COMPARE, "<": _COMPARE,
          "<=": _COMPARE, ">": _COMPARE, ">=": _COMPARE, "in": _COMPARE, "|": _SET, "&": _SET,
          "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}


def quote(text: str) -> str:
    """A string literal for ``text`` (only ``"`` and ``\\`` are escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_number(value: int | float) -> str:
    """A number literal: integers as written, decimals in positional notation (never ``1e-05``).

    Example:
        >>> format_number(3), format_number(0.5), format_number(1e-05)
        ('3', '0.5', '0.00001')
    """
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def format_node(node: n.Node) -> str:
    """Canonical source for any node.

    Example:
        >>> format_node(n.Binary("-", n.Number(1), n.Binary("-", n.Number(2), n.Number(3))))
        '1 - (2 - 3)'
    """
    match node:
        case n.Program():
            return _program(node)
        case n.Prelude():
            return "".join(f"{format_node(c)}\n" for c in node.constants)
        case n.Const():
            return f"const {node.name} = {_expr(node.value, _OR)}"
        case n.Def():
            params = ", ".join(map(format_node, node.params))
            return f"def {node.name}({params}) = {_expr(node.value, _OR)}"
        case n.DefParam():
            return f"{node.name}: {node.kind}"
        case n.Let():
            return f"let {node.name} = {_expr(node.value, _OR)}"
        case n.Template():
            return f"template {quote(node.text)}"
        case n.Param():
            return f"param {node.name}: {node.kind}" + (" ignored" if node.ignored else "")
        case n.Condition():
            return f"{node.field} {node.op} {_expr(node.value, _SET)}"
        case _:
            return _expr(node, _OR)


def program_blocks(program: n.Program) -> list[list[str]]:
    """The program's lines in canonical order, in blocks that a blank line separates.

    Blocks: the header; the program's own definitions (only if it has any); lets and body.
    """
    types = [f"{word} {value}" for word, value in (("content_type", program.content_type),
                                                   ("semantic_type", program.semantic_type))
             if value is not None]
    header = [f"program {program.name}", *map(format_node, program.templates), *types,
              *map(format_node, program.params), f"returns {program.returns}"]
    definitions = [format_node(d) for d in program.definitions]
    body = [*map(format_node, program.lets), _expr(program.body, _OR)]
    return [header, definitions, body] if definitions else [header, body]


def _program(program: n.Program) -> str:
    return "\n\n".join("\n".join(block) for block in program_blocks(program)) + "\n"


def _level(node: n.Node) -> int:
    match node:
        case n.Binary():
            return _LEVEL[node.op]
        case n.Not():
            return _NOT
        case n.Filter():
            return _POSTFIX
        case _:
            return _ATOM


def _expr(node: n.Node, minimum: int) -> str:
    """``node`` as an operand of a context that needs at least precedence ``minimum``."""
    text = _bare(node)
    return text if _level(node) >= minimum else f"({text})"


def _bare(node: n.Node) -> str:
    match node:
        case n.Binary():
            return _binary(node)
        case n.Not():
            return f"not {_expr(node.operand, _NOT)}"
        case n.Filter():
            conditions = ", ".join(map(format_node, node.conditions))
            return f"{_expr(node.source, _POSTFIX)}[{conditions}]"
        case n.Call():
            return f"{node.function}({', '.join(_expr(a, _OR) for a in node.args)})"
        case n.Apply():
            return f"{node.name}({', '.join(_expr(a, _OR) for a in node.args)})"
        case n.SetOf():
            return "{" + ", ".join(_expr(e, _OR) for e in node.elements) + "}"
        case n.TermSet():
            return f"{node.kind} {{{', '.join(map(quote, node.values))}}}"
        case n.Term():
            return f"{node.kind} {quote(node.value)}"
        case n.ParamRef():
            return f"${node.name}"
        case n.Name():
            return node.name
        case n.Number():
            return format_number(node.value)
        case n.Fact():
            return node.name
    raise TypeError(f"cannot print {type(node).__name__}")


def _binary(node: n.Binary) -> str:
    level = _LEVEL[node.op]
    if level == _COMPARE:  # non-associative: both sides one layer tighter
        left = _expr(node.left, _SET)
    elif level == _SET and not (isinstance(node.left, n.Binary) and node.left.op == node.op):
        # '|' and '&' never mix unparenthesised, so only the same operator chains.
        left = _expr(node.left, _SUM)
    else:
        left = _expr(node.left, level)
    return f"{left} {node.op} {_expr(node.right, level + 1)}"
