"""Numeric gradient checks, cs231n style: the one helper every chapter uses.

Whenever a chapter derives a gradient by hand (the center loss's
``dL/dx_i = x_i - c_{y_i}``, a triplet loss, a custom layer), it checks it against
central differences::

    from ferlib.numerics import check_gradient
    check_gradient(lambda x: f(x), x, analytic_grad, name="center loss dL/dx")
    # PASS center loss dL/dx: relative error 3.2e-10 (expect < 1e-07 in float64)

The line has the format of the lab graders (both take it from :mod:`ferlib.verdict`, a
leaf): ``PASS name: detail``, or ``FAIL name: detail`` and a hint, raised as
:class:`~ferlib.verdict.CheckFailed` -- an ``AssertionError`` that stops "Run All" but shows
in Jupyter as the FAIL line and hint, without a traceback, as a failed grader does.

What "right" looks like (float64, h = 1e-5, smooth function):

* ``< 1e-7``  -- the gradient is correct;
* ``1e-7 .. 1e-4`` -- suspicious, unless the function has kinks (ReLU, max, hinge)
  near the checked point;
* ``> 1e-2`` -- the gradient is wrong (a factor of 2 gives ~0.33, a sign ~1.0).

Do checks in float64.  In float32 the roundoff of ``f`` divided by ``2h`` swamps
the comparison (agreement only to about ``1e-3 .. 1e-2``).

``f`` is always called on a perturbed *copy* of ``x``; the ``x`` you pass is never
modified, so it is safe to call these while an autograd graph built on ``x`` is
still alive.  Works on numpy arrays and on torch tensors (torch functions are
evaluated under ``torch.no_grad()``).

Which relative error?  cs231n's :func:`relative_error` takes the *elementwise*
maximum of ``|a_k - b_k| / (|a_k| + |b_k|)``.  Each entry is measured against its own
size, so an entry that happens to be tiny (say 1e-4) is judged on roundoff alone:
for the center loss of a 32 x 16 batch (``|f|`` ~ 500, roundoff of the central
difference ~5e-9) a *correct* gradient exceeded 1e-7 in 34 of 40 random draws.
:func:`check_gradient` therefore compares, by default, against the scale of the
whole gradient: ``max_k |a_k - b_k| / max_k (|a_k| + |b_k|)`` (``elementwise=False``).
It still flags any error larger than ``tol`` times the largest gradient entry (a
factor of 2 gives 0.33, a sign 1.0, one entry off by a tenth of the largest
gradient entry ~0.05), but not
roundoff on near-zero entries.  Pass ``elementwise=True`` for the strict cs231n form.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .verdict import CheckFailed, fail_line, pass_line

try:  # torch is a dependency of ferlib, but keep numerics usable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = [
    "numerical_gradient",
    "numerical_jacobian_vector",
    "relative_error",
    "check_gradient",
]


def _is_tensor(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _to_numpy(x: Any) -> np.ndarray:
    """float64 numpy copy of an array, tensor or scalar."""
    if _is_tensor(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _working_copy(x: Any):
    """(copy of x, flat view of that copy) -- perturbing the view perturbs the copy."""
    if _is_tensor(x):
        xw = x.detach().clone().contiguous()
        return xw, xw.view(-1)
    xw = np.array(x, copy=True)
    if not np.issubdtype(xw.dtype, np.floating):
        raise TypeError(f"numerical gradients need a floating-point array, got dtype {xw.dtype}")
    return xw, xw.reshape(-1)  # a view: np.array(copy=True) is contiguous


def _no_grad():
    if torch is not None:
        return torch.no_grad()
    import contextlib  # pragma: no cover
    return contextlib.nullcontext()  # pragma: no cover


def _central_differences(g: Callable[[Any], float], x: Any, h: float, indices=None) -> np.ndarray:
    """d g / d x at the flat ``indices`` (all when None), as float64 numpy, by central differences."""
    xw, flat = _working_copy(x)
    n = flat.shape[0]
    idx = range(n) if indices is None else indices
    out = np.zeros(n if indices is None else len(indices), dtype=np.float64)
    with _no_grad():
        for k, i in enumerate(idx):
            i = int(i)
            old = float(flat[i])
            flat[i] = old + h
            fp = g(xw)
            flat[i] = old - h
            fm = g(xw)
            flat[i] = old
            out[k] = (fp - fm) / (2.0 * h)
    return out


def _like(values: np.ndarray, x: Any):
    """Return float64 ``values`` shaped and typed like ``x``."""
    if _is_tensor(x):
        return torch.as_tensor(values.reshape(tuple(x.shape)), dtype=x.dtype, device=x.device)
    return values.reshape(np.shape(x)).astype(np.asarray(x).dtype, copy=False)


def _scalar(v: Any) -> float:
    if _is_tensor(v):
        if v.numel() != 1:
            raise ValueError(f"f must return a scalar, got a tensor of shape {tuple(v.shape)}; "
                             "use numerical_jacobian_vector for array-valued f")
        return float(v.detach().double().item())
    a = np.asarray(v, dtype=np.float64)
    if a.size != 1:
        raise ValueError(f"f must return a scalar, got an array of shape {a.shape}; "
                         "use numerical_jacobian_vector for array-valued f")
    return float(a.reshape(()))


def numerical_gradient(f: Callable[[Any], Any], x: Any, h: float = 1e-5):
    """Gradient of a scalar function ``f`` at ``x`` by central differences.

    ``df/dx_k ~ (f(x + h e_k) - f(x - h e_k)) / 2h``, one pair of calls per entry
    of ``x`` (so keep ``x`` small).  ``x`` is a numpy array or a torch tensor --
    use float64.  Returns an array (or tensor) shaped and typed like ``x``.
    """
    return _like(_central_differences(lambda xw: _scalar(f(xw)), x, h), x)


def numerical_jacobian_vector(f: Callable[[Any], Any], x: Any, df: Any, h: float = 1e-5):
    """Gradient of ``sum(f(x) * df)`` w.r.t. ``x`` for an array-valued ``f``.

    This is what backprop computes for a layer ``y = f(x)`` given the upstream
    gradient ``df = dL/dy``: the vector-Jacobian product ``J^T df``.  Returned
    shaped and typed like ``x``.
    """
    dfn = _to_numpy(df)

    def g(xw):
        y = _to_numpy(f(xw))
        if y.shape != dfn.shape:
            raise ValueError(f"f(x) has shape {y.shape} but df has shape {dfn.shape}")
        return float(np.sum(y * dfn))

    return _like(_central_differences(g, x, h), x)


def relative_error(a: Any, b: Any, floor: float = 1e-12, *, elementwise: bool = True) -> float:
    """Relative error between two arrays (numpy, torch or scalars).

    ``elementwise=True`` (cs231n): ``max_k |a_k - b_k| / max(|a_k| + |b_k|, floor)``.
    ``elementwise=False`` (scale-aware, used by :func:`check_gradient`):
    ``max_k |a_k - b_k| / max(max_k (|a_k| + |b_k|), floor)``.
    0 means identical; 1 means opposite signs (or one of them zero).
    """
    a, b = _to_numpy(a), _to_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    diff, scale = np.abs(a - b), np.abs(a) + np.abs(b)
    if elementwise:
        return float(np.max(diff / np.maximum(scale, floor)))
    return float(np.max(diff) / max(float(np.max(scale)), floor))


def _dtype_name(x: Any) -> str:
    if _is_tensor(x):
        return str(x.dtype).replace("torch.", "")
    return str(np.asarray(x).dtype)


def check_gradient(
    f: Callable[[Any], Any],
    x: Any,
    analytic_grad: Any,
    *,
    h: float = 1e-5,
    tol: float = 1e-7,
    name: str = "",
    sparse: int | None = None,
    verbose: bool = True,
    seed: int = 0,
    elementwise: bool = False,
) -> float:
    """Compare ``analytic_grad`` with the numerical gradient of scalar ``f`` at ``x``.

    Parameters
    ----------
    f : scalar function of one array/tensor (called on perturbed copies of ``x``).
    x : the point, numpy array or torch tensor, ideally float64.
    analytic_grad : your gradient, shaped like ``x`` (array or tensor).
    h : finite-difference step.
    tol : largest relative error that passes (``1e-7`` is right for float64 and a
        smooth ``f``; loosen it for kinks or float32).
    name : printed in front of the result, e.g. ``"center loss dL/dx"``.
    sparse : check only this many random entries (``seed``) instead of all -- for
        large ``x``, where all entries would mean too many calls of ``f``.
    verbose : print the ``PASS`` line (a failure is always raised, never printed).
    elementwise : use the strict cs231n elementwise relative error instead of the
        scale-aware one (see the module docstring for why the default is scale-aware).

    Returns the relative error (see :func:`relative_error`); raises
    :class:`~ferlib.verdict.CheckFailed`, an ``AssertionError`` (its message: the ``FAIL`` line, the worst entry and a hint)
    when it exceeds ``tol``.
    """
    label = name or "gradient"
    g_an = _to_numpy(analytic_grad)
    shape = tuple(x.shape) if _is_tensor(x) else np.shape(x)
    if g_an.shape != tuple(shape):
        raise ValueError(f"{label}: analytic gradient has shape {g_an.shape}, x has shape {tuple(shape)}")
    flat_an = g_an.reshape(-1)
    n = flat_an.shape[0]
    if sparse is not None and sparse < n:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=int(sparse), replace=False))
        how = f"{len(idx)} of {n} entries"
    else:
        idx = np.arange(n)
        how = f"all {n} entries"
    num = _central_differences(lambda xw: _scalar(f(xw)), x, h, indices=idx)
    an = flat_an[idx]
    err = relative_error(an, num, elementwise=elementwise)

    dt = _dtype_name(x)
    result = f"relative error {err:.1e} (expect < {tol:.0e} in {dt})"
    if dt != "float64":
        result += f" [checks are only reliable in float64; x is {dt}]"
    if err <= tol:
        if verbose:
            print(pass_line(label, result))
        return err
    per = np.abs(an - num)
    if elementwise:
        per = per / np.maximum(np.abs(an) + np.abs(num), 1e-12)
    k = int(np.argmax(per))
    where = np.unravel_index(int(idx[k]), shape) if len(shape) else ()
    ratio = an[k] / num[k] if num[k] != 0 else float("nan")
    problem = (f"{result}\n  checked {how} with h={h:g}; worst entry {tuple(int(w) for w in where)}: "
               f"analytic {an[k]:.6g}, numerical {num[k]:.6g} (absolute error {abs(an[k] - num[k]):.2e}, "
               f"analytic/numerical = {ratio:.4g})")
    hint = ("a ratio such as 2 or -1 points at a missing factor or sign; with elementwise=True, an absolute "
            "error near 1e-10 on an entry that is itself ~0 is roundoff, not a bug")
    raise CheckFailed(fail_line(label, problem, hint))
