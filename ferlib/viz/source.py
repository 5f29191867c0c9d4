"""Show ferlib's own code in a chapter, beside the derivation it implements.

    from ferlib.viz.source import show_code
    show_code(center_loss)          # a highlighted code block, docstring left out

The chapters derive an equation and then show the function that implements it; the
docstring is left out by default because the prose above already says what it says.
"""
from __future__ import annotations

import ast
import inspect
import textwrap

__all__ = ["source_code", "show_code"]


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def source_code(obj, *, docstring: bool = False) -> str:
    """The source of a function, method or class, dedented; without docstrings unless ``docstring``.

    For a class, the docstrings of its methods are left out too.  Raises ``TypeError``
    for an object whose source Python cannot find (a builtin, a lambda typed at the
    prompt, an instance).
    """
    try:
        lines = textwrap.dedent(inspect.getsource(obj)).splitlines()
    except (TypeError, OSError) as e:
        raise TypeError(f"show_code needs a function, method or class defined in a file; "
                        f"got {type(obj).__name__} {obj!r:.60} ({e})") from None
    if docstring:
        return "\n".join(lines)
    tree = ast.parse("\n".join(lines))
    drop = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body \
                and _is_docstring(node.body[0]):
            doc = node.body[0]
            drop.update(range(doc.lineno - 1, doc.end_lineno))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def show_code(obj, *, docstring: bool = False):
    """A Markdown code block of ``obj``'s source (see :func:`source_code`), titled with its qualified name.

    Returns an ``IPython.display.Markdown``: the last expression of a cell displays it
    with syntax highlighting; ``display(show_code(f))`` anywhere else.
    """
    from IPython.display import Markdown

    code = source_code(obj, docstring=docstring)
    where = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
    return Markdown(f"`{where}`\n\n```python\n{code}\n```")
