"""A calculator that never runs code: the expression's syntax tree is walked node by node.

Allowed: numbers, + - * / // % **, unary + and -, parentheses, and round, abs, min, max, sqrt.
Anything else (names, attributes, other calls, strings, lambdas, comprehensions) is refused
before a single operation runs.
"""

from __future__ import annotations

import ast
import math
import operator

from agentmill.tools.registry import tool

MAX_LENGTH = 500  # characters of one expression
MAX_EXPONENT = 1000
MAX_BITS = 4096  # integers beyond this (~1233 digits) are refused before they are computed

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"round": round, "abs": abs, "min": min, "max": max, "sqrt": math.sqrt}


@tool
def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression, e.g. "(1200 * 0.035) / 12" or "round(sqrt(2), 3)".

    Args:
        expression: Numbers with + - * / // % ** and parentheses; functions round, abs, min, max, sqrt.
    """
    return evaluate(expression)


def evaluate(expression: str) -> int | float:
    """The value of `expression`: an int when exact, else a float rounded to 10 significant digits.

    Raises ValueError with a reason fit for the user on anything outside the allowed grammar.
    """
    text = expression.strip()
    if not text:
        raise ValueError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        raise ValueError(f"'{text}' is not an arithmetic expression") from None
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("the result is too large") from None
    return _tidy(value)


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):  # bool, str, complex, None, bytes, ...
            raise ValueError(f"{node.value!r} is not a number")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Call):
        return _call(node)
    raise ValueError(_refusal(node))


def _call(node: ast.Call) -> int | float:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in _FUNCTIONS:
        raise ValueError(f"only the functions {', '.join(_FUNCTIONS)} can be called")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ValueError(f"{name}() takes plain numbers only")
    args = [_eval(a) for a in node.args]
    if name in ("min", "max"):
        if not args:
            raise ValueError(f"{name}() needs at least one number")
        return _FUNCTIONS[name](args)
    arity = (1, 2) if name == "round" else (1,)
    if len(args) not in arity:
        raise ValueError(f"{name}() takes {' or '.join(map(str, arity))} number(s), got {len(args)}")
    if name == "sqrt" and args[0] < 0:
        raise ValueError("sqrt of a negative number")
    if name == "round" and len(args) == 2 and not isinstance(args[1], int):
        raise ValueError("round(x, n): n must be a whole number")
    return _checked(_FUNCTIONS[name](*args))


def _check_power(base: int | float, exponent: int | float) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponents above {MAX_EXPONENT} are not allowed")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if base.bit_length() * exponent > MAX_BITS:
            raise ValueError("the result is too large")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    if base < 0 and not float(exponent).is_integer():
        raise ValueError("a negative number to a fractional power is not a real number")


def _checked(value: int | float) -> int | float:
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ValueError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError
    return value


def _tidy(value: int | float) -> int | float:
    if isinstance(value, int):
        return value
    if value.is_integer() and abs(value) < 2 ** 53:  # exactly representable: 10/2 is 5
        return int(value)
    return float(f"{value:.10g}")  # 0.1 + 0.2 is 0.3


def _refusal(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"names are not allowed ('{node.id}'); write the number itself"
    if isinstance(node, ast.Attribute):
        return "attributes are not allowed"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        return "^ is not a power; write ** (2**8)"
    if isinstance(node, ast.Tuple):
        return "write numbers without thousands separators (1200000, not 1,200,000)"
    return f"{type(node).__name__.lower()} is not allowed in an arithmetic expression"
