"""ferlib.viz.source: a chapter shows ferlib's code without its docstrings."""
import pytest

from ferlib.losses.center import CenterLoss, center_update
from ferlib.viz.source import show_code, source_code


def test_source_code_drops_the_docstring_only():
    code = source_code(center_update)
    assert code.startswith("@torch.no_grad()\ndef center_update(")
    assert "One step of Wen et al.'s center rule" not in code
    assert "return centers - alpha * delta  # Eq. 6" in code
    with_doc = source_code(center_update, docstring=True)
    assert "One step of Wen et al.'s center rule" in with_doc and len(with_doc) > len(code)
    compile(code, "<center_update>", "exec")  # still valid Python once the docstring is gone


def test_source_code_of_a_class_drops_method_docstrings():
    code = source_code(CenterLoss)
    assert code.startswith("class CenterLoss(nn.Module):")
    assert "Apply the rule (Eq. 4, 6) in place" not in code and "def update(self" in code


def test_show_code_is_a_titled_python_block():
    md = show_code(center_update)
    assert md.data.startswith("`ferlib.losses.center.center_update`\n\n```python\n@torch.no_grad()")
    assert md.data.endswith("```")


def test_show_code_refuses_what_has_no_source():
    with pytest.raises(TypeError, match="function, method or class defined in a file"):
        source_code(len)
    with pytest.raises(TypeError, match="function, method or class"):
        source_code(3)
