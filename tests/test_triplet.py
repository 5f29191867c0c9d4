"""Triplet losses (DNNRL Eq. 1-4, FaceNet), mining, the criterion, configs and balanced batches."""
import itertools

import numpy as np
import pytest
import torch

from ferlib.data.batches import DeviceBatchSource
from ferlib.losses import (
    TripletCriterion,
    exponential_triplet_gradients,
    exponential_triplet_loss,
    exponential_triplet_loss_as_printed,
    mine_triplets,
    pairwise_squared_distances,
    relative_distance,
    triplet_loss,
)
from ferlib.numerics import check_gradient
from ferlib.train.criteria import ExponentialTripletConfig, TripletConfig, build_criterion


def triplets(n=6, dim=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, dim, generator=g, dtype=dtype) for _ in range(3))


def line_triplet(r):
    """One triplet in 1-D with d+ = 1 and d- = 1 + r (so relative distance r, for r > -1)."""
    a = torch.zeros(1, 1, dtype=torch.float64)
    p = torch.ones(1, 1, dtype=torch.float64)
    n = torch.full((1, 1), float(np.sqrt(1.0 + r)), dtype=torch.float64)
    return a, p, n


# -- distances --------------------------------------------------------------------------------

def test_pairwise_squared_distances_match_the_definition():
    x, y, _ = triplets(5, 4)
    y = y[:3]
    want = ((x[:, None] - y[None]) ** 2).sum(-1)
    assert torch.allclose(pairwise_squared_distances(x, y), want)
    self_d = pairwise_squared_distances(x)
    assert self_d.shape == (5, 5) and torch.all(self_d.diagonal() == 0) and torch.all(self_d >= 0)
    assert torch.allclose(self_d, ((x[:, None] - x[None]) ** 2).sum(-1))
    with pytest.raises(ValueError, match="same embedding dimension"):
        pairwise_squared_distances(x, torch.zeros(2, 3, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"\(n, dim\)"):
        pairwise_squared_distances(x[0])


def test_relative_distance_is_squared_and_signed():
    a = torch.tensor([[0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])   # d+ = 1
    n = torch.tensor([[0.0, 3.0]])   # d- = 9
    assert relative_distance(a, p, n).tolist() == [8.0]
    assert relative_distance(a, n, p).tolist() == [-8.0]  # wrongly ordered: negative
    with pytest.raises(ValueError, match="same shape"):
        relative_distance(a, p, torch.zeros(2, 2))


# -- the exponential triplet loss, as printed and corrected ----------------------------------

@pytest.mark.parametrize("alpha,gamma", [(0.2, 0.0), (0.5, 0.3)])
def test_exponential_loss_values(alpha, gamma):
    for r in (-0.5, 0.0, gamma / 2, gamma + 0.4, 3.0):
        a, p, n = line_triplet(r)
        want = np.exp(-alpha * max(r - gamma, 0.0))
        assert exponential_triplet_loss(a, p, n, alpha, gamma).item() == pytest.approx(want)
        want_printed = np.exp(-alpha * max(-r - gamma, 0.0))
        assert exponential_triplet_loss_as_printed(a, p, n, alpha, gamma).item() == pytest.approx(want_printed)


def test_wrongly_ordered_triplets_get_no_gradient_with_gamma_zero():
    a, p, n = (t.requires_grad_() for t in line_triplet(-0.5))
    loss = exponential_triplet_loss(a, p, n, alpha=0.2, gamma=0.0)
    loss.backward()
    assert loss.item() == 1.0
    assert all(t.grad.abs().max() == 0 for t in (a, p, n))


def test_printed_eq1_is_flat_on_correct_triplets_and_pushes_wrong_ones_the_wrong_way():
    # every correctly ordered triplet: constant 1, zero gradient
    a, p, n = (t.requires_grad_() for t in line_triplet(2.0))
    exponential_triplet_loss_as_printed(a, p, n).backward()
    assert all(t.grad.abs().max() == 0 for t in (a, p, n))
    # a wrongly ordered one: a gradient step makes it *more* wrong (r decreases)
    a, p, n = triplets(8, 3, seed=1)
    wrong = relative_distance(a, p, n) < 0
    a, p, n = (t[wrong].clone().requires_grad_() for t in (a, p, n))
    r0 = relative_distance(a, p, n)
    exponential_triplet_loss_as_printed(a, p, n).backward()
    r1 = relative_distance(a - 0.01 * a.grad, p - 0.01 * p.grad, n - 0.01 * n.grad)
    assert len(r0) > 0 and torch.all(r1 < r0)


def test_corrected_loss_step_increases_the_relative_distance_of_active_triplets():
    a, p, n = triplets(8, 3, seed=1)
    right = relative_distance(a, p, n) > 0
    a, p, n = (t[right].clone().requires_grad_() for t in (a, p, n))
    r0 = relative_distance(a, p, n)
    exponential_triplet_loss(a, p, n).backward()
    r1 = relative_distance(a - 0.01 * a.grad, p - 0.01 * p.grad, n - 0.01 * n.grad)
    assert len(r0) > 0 and torch.all(r1 > r0)


def test_gradient_is_largest_just_past_the_margin():
    """Fig. 3: |dL/dr| = alpha * exp(-alpha (r - gamma)) for r > gamma, 0 below."""
    alpha, gamma = 0.2, 0.5
    rs = torch.tensor([-1.0, 0.0, 0.4, 0.51, 1.0, 2.0, 5.0], dtype=torch.float64, requires_grad=True)
    from ferlib.losses.triplet import _exponential_from_r
    _exponential_from_r(rs, alpha, gamma).sum().backward()
    g = -rs.grad
    assert torch.all(g[:3] == 0)
    assert torch.all(g[3:-1] > g[4:])  # decreasing beyond the margin
    assert g[3].item() == pytest.approx(alpha * np.exp(-alpha * 0.01))


@pytest.mark.parametrize("alpha,gamma", [(0.2, 0.0), (0.7, 0.5)])
def test_hand_gradients_eq2_to_4_match_autograd_and_numerics(alpha, gamma):
    a, p, n = triplets(10, 4, seed=2)
    r = relative_distance(a, p, n)
    assert (r > gamma).any() and (r <= gamma).any()  # both branches are exercised
    dA, dP, dN = exponential_triplet_gradients(a, p, n, alpha, gamma)
    for k, (grad, name) in enumerate(zip((dA, dP, dN), ("anchor", "positive", "negative"))):
        args = [a, p, n]

        def f(t, k=k):
            args_k = list(args)
            args_k[k] = t
            return exponential_triplet_loss(*args_k, alpha=alpha, gamma=gamma)

        check_gradient(f, args[k], grad, name=f"exponential triplet dL/d{name}", verbose=False)
        assert torch.all(grad[r <= gamma] == 0)
    # and autograd
    a2, p2, n2 = (t.clone().requires_grad_() for t in (a, p, n))
    exponential_triplet_loss(a2, p2, n2, alpha, gamma).backward()
    for got, want in ((dA, a2.grad), (dP, p2.grad), (dN, n2.grad)):
        assert torch.allclose(got, want)


def test_printed_delta_without_parentheses_is_not_the_gradient():
    alpha, gamma = 0.2, 0.0
    a, p, n = triplets(10, 4, seed=3)
    d_pos, d_neg = (a - p).pow(2).sum(1), (a - n).pow(2).sum(1)
    printed = torch.exp(-alpha * d_neg) - d_pos - gamma   # e^{-alpha d-} - d+ - gamma, read literally
    right = torch.exp(-alpha * (d_neg - d_pos - gamma))
    active = d_neg - d_pos > gamma
    dA, _, _ = exponential_triplet_gradients(a, p, n, alpha, gamma)
    want = -2 * alpha * right[:, None] * (p - n)
    assert torch.allclose(dA[active], want[active])
    assert not torch.allclose(dA[active], (-2 * alpha * printed[:, None] * (p - n))[active])


def test_triplet_hinge_values_and_gradient():
    a, p, n = triplets(10, 3, seed=4)
    r = relative_distance(a, p, n)
    want = torch.clamp(0.2 - r, min=0)
    assert torch.allclose(triplet_loss(a, p, n, 0.2, "none"), want)
    assert triplet_loss(a, p, n, 0.2).item() == pytest.approx(want.mean().item())
    dA = torch.where((r < 0.2)[:, None], 2 * (n - p), torch.zeros_like(a)) / len(a)
    check_gradient(lambda t: triplet_loss(t, p, n, 0.2), a, dA, name="triplet hinge dL/da", verbose=False)


def test_reductions_and_bad_arguments():
    a, p, n = triplets(7, 3)
    per = exponential_triplet_loss(a, p, n, reduction="none")
    assert per.shape == (7,)
    assert exponential_triplet_loss(a, p, n).item() == pytest.approx(per.sum().item())  # paper's L is a sum
    assert exponential_triplet_loss(a, p, n, reduction="mean").item() == pytest.approx(per.mean().item())
    empty = torch.zeros(0, 3)
    assert exponential_triplet_loss(empty, empty, empty, reduction="mean").item() == 0.0
    with pytest.raises(ValueError, match="reduction"):
        exponential_triplet_loss(a, p, n, reduction="avg")
    with pytest.raises(ValueError, match="alpha must be > 0"):
        exponential_triplet_loss(a, p, n, alpha=0.0)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        exponential_triplet_loss(a, p, n, gamma=-0.1)
    with pytest.raises(ValueError, match="margin"):
        triplet_loss(a, p, n, margin=-1.0)
    with pytest.raises(ValueError, match=r"\(N, dim\)"):
        exponential_triplet_loss(a[0], p[0], n[0])


# -- mining ---------------------------------------------------------------------------------------

def batch(seed=0, b=24, dim=4, classes=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, dim, generator=g)
    y = torch.randint(0, classes, (b,), generator=g)
    y[0] = classes  # a class with one sample: that anchor has no positive
    return x, y


def brute_force(x, y, strategy, margin=0.2):
    """Reference mining with plain Python loops (small batches only)."""
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    out = []
    b = len(y)
    for a in range(b):
        pos = [p for p in range(b) if p != a and y[p] == y[a]]
        neg = [n for n in range(b) if y[n] != y[a]]
        if not pos or not neg:
            continue
        if strategy == "all":
            out += [(a, p, n) for p in pos for n in neg]
        elif strategy == "batch-hard":
            out.append((a, max(pos, key=lambda p: d[a, p]), min(neg, key=lambda n: d[a, n])))
        else:
            for p in pos:
                semi = [n for n in neg if d[a, p] < d[a, n] < d[a, p] + margin]
                if semi:
                    out.append((a, p, min(semi, key=lambda n: d[a, n])))
    return sorted(out)


@pytest.mark.parametrize("strategy", ["all", "batch-hard", "semi-hard"])
@pytest.mark.parametrize("seed", [0, 1])
def test_mining_matches_brute_force(strategy, seed):
    x, y = batch(seed)
    a, p, n = mine_triplets(x, y, strategy, margin=1.5)
    assert a.dtype == p.dtype == n.dtype == torch.int64
    got = sorted(zip(a.tolist(), p.tolist(), n.tolist()))
    assert got == brute_force(x, y, strategy, margin=1.5)
    assert len(got) > 0
    assert torch.all(a != p) and torch.all(y[a] == y[p]) and torch.all(y[a] != y[n])
    assert 0 not in a.tolist()  # the lone sample has no positive


def test_semi_hard_triplets_lie_in_the_window_and_batch_hard_is_hardest():
    x, y = batch(2, b=40)
    a, p, n = mine_triplets(x, y, "semi-hard", margin=0.5)
    r = relative_distance(x[a], x[p], x[n])
    assert torch.all(r > 0) and torch.all(r < 0.5)
    a, p, n = mine_triplets(x, y, "batch-hard")
    r_hard = relative_distance(x[a], x[p], x[n])
    aa, pp, nn = mine_triplets(x, y, "all")
    r_all = relative_distance(x[aa], x[pp], x[nn])
    for i, anchor in enumerate(a.tolist()):
        assert r_hard[i] <= r_all[aa == anchor].min() + 1e-5  # the hardest triplet of that anchor


def test_mining_edge_cases_and_errors():
    x = torch.randn(5, 2)
    for strategy in ("all", "batch-hard", "semi-hard"):
        a, p, n = mine_triplets(x, torch.zeros(5, dtype=torch.long), strategy)  # one class: no negatives
        assert len(a) == len(p) == len(n) == 0
    with pytest.raises(ValueError, match="mining strategy"):
        mine_triplets(x, torch.zeros(5, dtype=torch.long), "hardest")
    with pytest.raises(ValueError, match="labels must be"):
        mine_triplets(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class codes"):
        mine_triplets(x, torch.zeros(5))
    with pytest.raises(ValueError, match="flatten"):
        mine_triplets(x[:, :, None], torch.zeros(5, dtype=torch.long))


# -- the criterion ---------------------------------------------------------------------------------

@pytest.mark.parametrize("loss,strategy,reduction",
                         list(itertools.product(["exponential", "triplet"], ["all", "batch-hard", "semi-hard"],
                                                ["sum", "mean"])))
def test_criterion_equals_the_loss_on_mined_triplets(loss, strategy, reduction):
    x, y = batch(3, b=32)
    crit = TripletCriterion(loss, mining=strategy, reduction=reduction, margin=0.8, alpha=0.3, gamma=0.1)
    got = crit(None, x, y)
    a, p, n = mine_triplets(x, y, strategy, margin=0.8)
    if loss == "exponential":
        per = exponential_triplet_loss(x[a], x[p], x[n], alpha=0.3, gamma=0.1, reduction="none")
        active = relative_distance(x[a], x[p], x[n]) > 0.1
    else:
        per = triplet_loss(x[a], x[p], x[n], margin=0.8, reduction="none")
        active = per > 0
    want = per.sum() if reduction == "sum" else per.mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5)
    terms = crit.last_terms
    assert set(terms) == {"triplet", "active_fraction", "triplets"}
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in terms.values())
    assert int(terms["triplets"]) == len(a)
    assert terms["active_fraction"].item() == pytest.approx(active.double().mean().item(), abs=1e-6)


@pytest.mark.parametrize("strategy", ["all", "batch-hard", "semi-hard"])
def test_criterion_gradient_check(strategy):
    x, y = batch(4, b=12, dim=3, classes=3)
    x = (x + 3.0 * torch.nn.functional.one_hot(y, 5)[:, :3]).double()  # separated classes: triplets are active
    crit = TripletCriterion("exponential", mining=strategy, mining_margin=50.0, reduction="mean")
    xg = x.clone().requires_grad_()
    crit(None, xg, y).backward()
    assert xg.grad.abs().sum() > 0 and crit.last_terms["active_fraction"] > 0.5
    # the mined set is fixed at x (mining is not differentiable), so compare on the fixed triplets
    a, p, n = mine_triplets(x, y, strategy, margin=50.0)
    check_gradient(lambda t: exponential_triplet_loss(t[a], t[p], t[n], reduction="mean"), x, xg.grad,
                   name=f"criterion ({strategy})", verbose=False)


def test_batch_hard_gets_no_gradient_with_gamma_zero_at_initialisation():
    """The consequence of the consistent Eq. 1: the hardest triplets are wrongly ordered."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 16, generator=g)
    y = torch.randint(0, 7, (128,), generator=g)
    crit = TripletCriterion("exponential", mining="batch-hard")
    xg = x.clone().requires_grad_()
    crit(None, xg, y).backward()
    assert crit.last_terms["active_fraction"].item() == 0.0 and xg.grad.abs().max() == 0
    TripletCriterion("exponential", mining="all")(None, xg, y).backward()
    assert xg.grad.abs().max() > 0


def test_criterion_batch_without_triplets_and_dtypes():
    crit = TripletCriterion("exponential", mining="all")
    x = torch.randn(6, 4, requires_grad=True)
    loss = crit(None, x, torch.zeros(6, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and int(crit.last_terms["triplets"]) == 0
    out = crit(torch.randn(6, 7), torch.randn(6, 4).bfloat16(), torch.arange(6) % 2)
    assert out.dtype == torch.float32


def test_criterion_bad_arguments():
    with pytest.raises(ValueError, match="loss must be"):
        TripletCriterion("hinge")
    with pytest.raises(ValueError, match="mining strategy"):
        TripletCriterion(mining="hard")
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        TripletCriterion(reduction="none")
    with pytest.raises(ValueError, match="alpha"):
        TripletCriterion(alpha=-1)


def test_validation_loss_is_deterministic_and_averages_batches():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 8, generator=g)
    y = torch.randint(0, 7, (300,), generator=g)
    crit = TripletCriterion("exponential", mining="all")
    v1 = crit.validation_loss(x, y, batch_size=64)
    assert v1 == crit.validation_loss(x, y, batch_size=64)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    want = np.mean([crit(None, x[order[k * 64:(k + 1) * 64]], y[order[k * 64:(k + 1) * 64]]).item()
                    for k in range(300 // 64)])
    assert v1 == pytest.approx(want, rel=1e-6)
    assert crit.validation_loss(x, y, seed=1) != crit.validation_loss(x, y, seed=2)
    assert isinstance(crit.validation_loss(x[:10], y[:10]), float)  # fewer than one batch: one batch
    with pytest.raises(ValueError, match="batch_size"):
        crit.validation_loss(x, y, batch_size=1)


def test_configs_build_the_criteria():
    c = build_criterion(ExponentialTripletConfig(), num_classes=7, feature_dim=16)
    cfg = ExponentialTripletConfig()
    assert isinstance(c, TripletCriterion) and c.loss == "exponential"
    assert (c.alpha, c.gamma, c.mining, c.reduction) == (0.2, 0.0, cfg.mining, cfg.reduction)
    assert cfg.to_dict()["name"] == "exponential-triplet" and cfg.to_dict()["alpha"] == 0.2
    t = build_criterion(TripletConfig(margin=0.5, mining="batch-hard"), num_classes=7, feature_dim=16)
    assert (t.loss, t.margin, t.mining) == ("triplet", 0.5, "batch-hard")
    assert TripletConfig().to_dict() == {"name": "triplet", "margin": 0.2, "mining": "semi-hard", "reduction": "mean"}


# -- balanced batches (DeviceBatchSource(sampler="balanced")) --------------------------------------

def unbalanced(n=300, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8)
    labels = rng.choice(7, size=n, p=[0.3, 0.02, 0.2, 0.2, 0.1, 0.1, 0.08])
    return pixels, labels


def test_balanced_batches_hold_every_class_equally():
    pixels, labels = unbalanced()
    src = DeviceBatchSource(pixels, labels, batch_size=32, sampler="balanced", seed=1,
                            extra={"index": np.arange(len(labels))})
    assert len(src) == 300 // 32
    batches = list(src)
    assert len(batches) == 9
    for x, y, extra in batches:
        counts = np.bincount(y.numpy(), minlength=7)
        assert len(y) == 32 and counts.min() >= 32 // 7 and counts.sum() - 7 * (32 // 7) == 32 % 7
        assert np.array_equal(labels[extra["index"].numpy()], y.numpy())
    # the rare class (few samples) is recycled: each of its samples served, some more than once
    seen = np.concatenate([e["index"].numpy() for _, _, e in batches])
    rare = np.flatnonzero(labels == 1)
    assert len(rare) < 9 * (32 // 7)
    assert set(seen[labels[seen] == 1]) == set(rare) and (labels[seen] == 1).sum() > len(rare)
    assert not np.array_equal(batches[0][1].numpy(), np.sort(batches[0][1].numpy()))  # classes are mixed


def test_balanced_batches_are_deterministic_and_resume_bitwise():
    pixels, labels = unbalanced()
    a = DeviceBatchSource(pixels, labels, batch_size=32, sampler="balanced", seed=4)
    b = DeviceBatchSource(pixels, labels, batch_size=32, sampler="balanced", seed=4)
    assert torch.equal(a.permutation(3), b.permutation(3))
    assert not torch.equal(a.permutation(3), a.permutation(4))
    full = list(a.iter_from(3, 0))
    rest = list(b.iter_from(3, 5))
    assert len(rest) == len(full) - 5
    for (xa, ya), (xb, yb) in zip(full[5:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert DeviceBatchSource(pixels, labels, batch_size=32).sampler == "random"  # default unchanged


def test_balanced_sampler_refuses_what_it_cannot_do():
    pixels, labels = unbalanced()
    with pytest.raises(ValueError, match="sampler must be"):
        DeviceBatchSource(pixels, labels, batch_size=32, sampler="stratified")
    with pytest.raises(ValueError, match="number of classes"):
        DeviceBatchSource(pixels, labels, batch_size=5, sampler="balanced")
    with pytest.raises(ValueError, match="shuffle=True"):
        DeviceBatchSource(pixels, labels, batch_size=32, sampler="balanced", shuffle=False)
    with pytest.raises(ValueError, match="soft labels"):
        DeviceBatchSource(pixels, np.full((300, 7), 1 / 7, dtype=np.float32), batch_size=32, sampler="balanced")
    with pytest.raises(ValueError, match="fewer than one batch"):
        DeviceBatchSource(pixels[:20], labels[:20], batch_size=32, sampler="balanced")
