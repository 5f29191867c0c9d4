"""ferlib.numerics: numerical gradients and the cs231n-style gradient check."""
import numpy as np
import pytest
import torch

from ferlib.numerics import check_gradient, numerical_gradient, numerical_jacobian_vector, relative_error


def test_numerical_gradient_of_known_function_numpy():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.3]])
    g = numerical_gradient(lambda z: np.sum(z ** 3) + z[0, 1] * z[1, 0], x)
    expected = 3 * x ** 2
    expected[0, 1] += x[1, 0]
    expected[1, 0] += x[0, 1]
    assert isinstance(g, np.ndarray) and g.shape == x.shape
    np.testing.assert_allclose(g, expected, rtol=1e-8, atol=1e-8)


def test_numerical_gradient_torch_keeps_type_and_leaves_x_alone():
    x = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64, requires_grad=True)
    x_before = x.detach().clone()
    g = numerical_gradient(lambda z: torch.sin(z).sum(), x)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float64 and g.shape == x.shape
    torch.testing.assert_close(g, torch.cos(x_before), rtol=1e-9, atol=1e-9)
    assert torch.equal(x.detach(), x_before)  # never modified


def test_numerical_jacobian_vector():
    x = np.array([1.0, -2.0, 0.5])
    df = np.array([0.1, 1.0, -3.0])
    g = numerical_jacobian_vector(lambda z: z ** 2, x, df, h=1e-5)
    np.testing.assert_allclose(g, 2 * x * df, rtol=1e-8, atol=1e-10)


def test_relative_error_forms():
    a = np.array([1.0, 1e-6])
    b = np.array([1.0, 2e-6])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, b) == pytest.approx(1 / 3)  # cs231n: the tiny entry dominates
    assert relative_error(a, b, elementwise=False) == pytest.approx(1e-6 / 2, rel=1e-3)
    assert relative_error(np.array([1.0]), np.array([-1.0])) == pytest.approx(1.0)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def _quadratic_problem():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    x = rng.normal(size=(4,))
    f = lambda z: 0.5 * z @ A @ z  # noqa: E731
    grad = 0.5 * (A + A.T) @ x
    return f, x, grad


def test_check_gradient_passes_on_correct_gradient(capsys):
    f, x, grad = _quadratic_problem()
    err = check_gradient(f, x, grad, name="quadratic df/dx")
    assert err < 1e-7
    out = capsys.readouterr().out
    assert out.startswith("PASS quadratic df/dx: relative error ") and out.rstrip().endswith("(expect < 1e-07 in float64)")


def test_check_gradient_raises_on_wrong_gradient():
    f, x, grad = _quadratic_problem()
    with pytest.raises(AssertionError, match=r"^FAIL off by two: relative error [\s\S]*analytic/numerical = 2[\s\S]*hint: "):
        check_gradient(f, x, 2 * grad, name="off by two", verbose=False)
    with pytest.raises(AssertionError):
        check_gradient(f, x, -grad, verbose=False)
    assert check_gradient(f, x, grad, elementwise=True, verbose=False) < 1e-7  # strict form, small problem


def test_check_gradient_sparse_and_torch():
    x = torch.randn(50, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    err = check_gradient(lambda z: (z ** 2).sum() / 2, x, x.clone(), sparse=15, verbose=False)
    assert err < 1e-7
    with pytest.raises(AssertionError, match="15 of 1000 entries"):
        check_gradient(lambda z: (z ** 2).sum() / 2, x, 2 * x, sparse=15, verbose=False)


def test_check_gradient_prints_the_graders_line_format(capsys):
    from ferlib.verdict import fail_line, pass_line

    f, x, grad = _quadratic_problem()
    err = check_gradient(f, x, grad, name="q")
    assert capsys.readouterr().out == pass_line("q", f"relative error {err:.1e} (expect < 1e-07 in float64)") + "\n"
    with pytest.raises(AssertionError) as info:
        check_gradient(f, x, -grad, name="q", verbose=False)
    assert str(info.value).startswith(fail_line("q", "relative error 1.0e+00 (expect < 1e-07 in float64)"))
    assert capsys.readouterr().out == ""  # a failure is raised, not printed


def test_check_gradient_warns_about_float32(capsys):
    x = torch.tensor([0.5, -1.0], dtype=torch.float32)
    check_gradient(lambda z: (z ** 2).sum(), x, 2 * x, tol=1e-2, name="f32")
    assert "only reliable in float64; x is float32" in capsys.readouterr().out


def test_failed_gradient_check_renders_like_a_failed_grader():
    """Raised as the graders' CheckFailed: stops Run All, shows in Jupyter as the FAIL line (no traceback)."""
    from ferlib.checks import CheckFailed as GraderFailed
    from ferlib.verdict import CheckFailed

    f, x, grad = _quadratic_problem()
    with pytest.raises(CheckFailed) as info:
        check_gradient(f, x, 2 * grad, name="off by two", verbose=False)
    assert CheckFailed is GraderFailed and isinstance(info.value, AssertionError)
    shown = "\n".join(info.value._render_traceback_())
    assert "FAIL off by two" in shown and "hint: " in shown and "Traceback" not in shown and "File " not in shown


def test_numerics_does_not_import_the_graders():
    import subprocess
    import sys

    code = ("import sys, ferlib.numerics; "
            "print(sorted(m for m in sys.modules if m.startswith('ferlib.checks')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
