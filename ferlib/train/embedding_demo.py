r"""A network with a 2-D (or 3-D) feature layer, and a grid of short runs over lambda and alpha.

Chapter 03 (center loss) redraws Wen et al.'s picture: the deep features of a network
whose last hidden layer has only two units, plotted with the class centers, once with
softmax alone (lambda = 0) and once with softmax + center loss (Eq. 5 of the densenet
paper).  To let sliders over lambda and alpha redraw at once, every run is trained
beforehand: :func:`center_grid` trains one small run per (lambda, alpha) pair and keeps
the results in memory.

What is trained
---------------
* Input: faces average-pooled from 48x48 to 16x16 (``pool=3``), flattened, standardised
  per pixel with the Training statistics (densenet Sec. IV-C's per-pixel
  normalisation).  By default the embedded synthetic faces (:func:`toy_face_data`):
  the same picture on every machine, in seconds.
* :class:`EmbeddingNet`: ``256 -> 64 -> 64 -> d`` with PReLU (as Wen et al.'s 2-D
  MNIST net), ``d = 2`` or ``3`` the deep feature ``x_i``, then a linear 7-way
  classifier.  It has ``forward_with_features`` like every ferlib model.
* :func:`train_toy`: Adam, a fixed number of steps of batch 128, the loss of
  :class:`~ferlib.losses.center.SoftmaxCenterLoss` (``reduction="mean"``, centers moved
  by the rule, Eq. 4 and 6).  Every run of a grid starts from the same weights and
  sees the same batches, so two runs differ only in lambda and alpha.

Each :class:`ToyRun` keeps the Training and held-out (PublicTest) features, the
centers, a loss history, accuracies, and the numbers the chapter reports:
intra-class spread, inter-class distance (:mod:`ferlib.losses.center`), their
scale-free ratio, and the *center lag* -- how far each center trails the mean of its
class (what alpha controls).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..evaluate.separation import inter_class_distance, intra_class_spread, separation_stats  # noqa: F401
from ..losses.center import SoftmaxCenterLoss
from ..models.embedding_net import EmbeddingNet  # noqa: F401

__all__ = [
    "ToyData",
    "toy_face_data",
    "EmbeddingNet",
    "ToyRun",
    "train_toy",
    "CenterGrid",
    "center_grid",
    "grid_settings",
    "separation_stats",
    "torch_threads",
]


# -- data ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToyData:
    """Flattened, standardised small faces: ``(n, in_dim)`` float32 tensors and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple
    tag: str
    image_size: int
    held_out: str = "PublicTest"

    @property
    def in_dim(self) -> int:
        return int(self.x_train.shape[1])


def toy_face_data(dataset=None, *, n_per_class: int = 150, pool: int = 3, seed: int = 0,
                  held_out: str = "PublicTest") -> ToyData:
    """Faces pooled to ``48 // pool`` pixels a side, flattened and standardised per pixel.

    ``dataset``: a :class:`~ferlib.data.dataset.FERDataset`; ``None`` draws
    ``n_per_class`` synthetic faces per class (80/10/10 split).  Training is the
    training split, ``held_out`` (PublicTest by default) the points shown as "held out";
    nothing is selected on it.  The per-pixel mean and std come from Training alone.
    """
    if dataset is None:
        from ..data.synthetic import make_synthetic_faces

        dataset = make_synthetic_faces(n_per_class=n_per_class, seed=seed)
    if pool < 1 or 48 % pool:
        raise ValueError(f"pool must divide 48, got {pool}")

    def prep(split: str):
        part = dataset.split(split)
        if len(part) == 0:
            raise ValueError(f"toy_face_data: split {split!r} is empty")
        x = torch.as_tensor(part.pixels, dtype=torch.float32).unsqueeze(1) / 255.0
        if pool > 1:
            x = F.avg_pool2d(x, pool)
        return x.flatten(1), torch.as_tensor(part.labels, dtype=torch.long)

    x_tr, y_tr = prep("Training")
    x_te, y_te = prep(held_out)
    mean, std = x_tr.mean(0), x_tr.std(0).clamp_min(1e-3)
    return ToyData((x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te,
                   tuple(dataset.class_names), dataset.tag, 48 // pool, held_out)


# -- model --------------------------------------------------------------------------------

# -- one run ------------------------------------------------------------------------------

def _center_lag(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> float:
    """Mean over the classes present of ``||c_j - mean_j||``: how far the centers trail the features."""
    lags = []
    for j in torch.unique(labels):
        lags.append(float((centers[j] - features[labels == j].mean(0)).norm()))
    return float(np.mean(lags)) if lags else float("nan")


@dataclass
class ToyRun:
    """The outcome of :func:`train_toy` (arrays are numpy float32 on the CPU)."""

    lambda_: float
    alpha: float
    feature_dim: int
    steps: int
    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    centers: np.ndarray
    history: dict  # {"step": [...], "ce": [...], "center": [...]} (batch values, L_C unweighted)
    train_accuracy: float
    test_accuracy: float
    train_stats: dict
    test_stats: dict
    center_lag: float
    seconds: float

    def features(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``(features, labels)`` of ``"train"`` or ``"test"`` (the held-out split)."""
        if split == "train":
            return self.train_features, self.train_labels
        if split == "test":
            return self.test_features, self.test_labels
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def summary(self) -> dict:
        return {"lambda": self.lambda_, "alpha": self.alpha,
                "train acc": round(self.train_accuracy, 3), "held-out acc": round(self.test_accuracy, 3),
                "intra-class spread": self.train_stats["intra_class_spread"],
                "inter-class distance": self.train_stats["inter_class_distance"],
                "ratio": self.train_stats["ratio"],
                "held-out ratio": self.test_stats["ratio"],
                "center lag": self.center_lag}


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` torch threads, then restore (tiny nets run fastest on one)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_toy(data: ToyData, lambda_: float, alpha: float, *, feature_dim: int = 2, steps: int = 300,
              batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 1e-4, hidden: int = 64,
              seed: int = 0, log_every: int = 10, reduction: str = "mean", threads: int | None = 1) -> ToyRun:
    """Train :class:`EmbeddingNet` with ``L = L_S + lambda * L_C`` (Eq. 5), centers by the rule (Eq. 4, 6).

    The initial weights and the batches depend on ``seed`` only, never on lambda or
    alpha.  ``threads``: torch threads while training (restored afterwards).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    start = time.perf_counter()
    with torch_threads(threads):
        torch.manual_seed(seed)
        k = len(data.class_names)
        net = EmbeddingNet(data.in_dim, feature_dim, hidden, k)
        crit = SoftmaxCenterLoss(k, feature_dim, lambda_=lambda_, alpha=alpha, reduction=reduction)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        n = data.x_train.shape[0]
        hist = {"step": [], "ce": [], "center": []}
        for step in range(1, steps + 1):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            x, y = data.x_train[idx], data.y_train[idx]
            logits, feats = net.forward_with_features(x)
            loss = crit(logits, feats, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            crit.after_step(feats.detach(), y)
            if step % log_every == 0 or step == steps:
                hist["step"].append(step)
                hist["ce"].append(float(crit.last_terms["ce"]))
                hist["center"].append(float(crit.last_terms["center"]))
        net.eval()
        with torch.no_grad():
            lo_tr, f_tr = net.forward_with_features(data.x_train)
            lo_te, f_te = net.forward_with_features(data.x_test)
        centers = crit.centers.detach().clone()
    return ToyRun(
        lambda_=float(lambda_), alpha=float(alpha), feature_dim=int(feature_dim), steps=int(steps),
        train_features=f_tr.numpy().astype(np.float32), train_labels=data.y_train.numpy(),
        test_features=f_te.numpy().astype(np.float32), test_labels=data.y_test.numpy(),
        centers=centers.numpy().astype(np.float32), history=hist,
        train_accuracy=float((lo_tr.argmax(1) == data.y_train).float().mean()),
        test_accuracy=float((lo_te.argmax(1) == data.y_test).float().mean()),
        train_stats=separation_stats(f_tr, data.y_train), test_stats=separation_stats(f_te, data.y_test),
        center_lag=_center_lag(f_tr, data.y_train, centers),
        seconds=time.perf_counter() - start)


# -- the grid -----------------------------------------------------------------------------

@dataclass
class CenterGrid:
    """Runs keyed by ``(lambda, alpha)``, trained from the same start on the same data."""

    lambdas: tuple
    alphas: tuple
    runs: dict  # {(lambda, alpha): ToyRun}
    class_names: tuple
    tag: str
    held_out: str = "PublicTest"
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    def run(self, lambda_: float, alpha: float) -> ToyRun:
        key = (float(lambda_), float(alpha))
        if key not in self.runs:
            raise KeyError(f"no run for lambda={lambda_}, alpha={alpha}; the grid has lambdas {self.lambdas} "
                           f"and alphas {self.alphas}")
        return self.runs[key]

    def __len__(self) -> int:
        return len(self.runs)

    def table(self):
        """One row per run (pandas DataFrame): accuracies and the separation numbers on Training."""
        import pandas as pd

        return pd.DataFrame([self.runs[k].summary() for k in sorted(self.runs)])


def grid_settings(profile: str | None = None) -> dict:
    """The grid of the quick profile (seconds on a laptop CPU) or of the full profile (minutes)."""
    from ..profiles import get_profile

    if get_profile(profile) == "quick":
        return {"lambdas": (0.0, 0.01, 0.1, 1.0), "alphas": (0.1, 0.5, 0.9), "steps": 300, "n_per_class": 150}
    return {"lambdas": (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
            "alphas": (0.1, 0.5, 0.9, 1.5, 1.9), "steps": 1500, "n_per_class": 400}


def center_grid(data: ToyData, lambdas=(0.0, 0.01, 0.1, 1.0), alphas=(0.1, 0.5, 0.9), *,
                progress: bool = False, **train_kwargs) -> CenterGrid:
    """Train one :func:`train_toy` run per ``(lambda, alpha)``; all are kept in memory."""
    lambdas = tuple(float(v) for v in lambdas)
    alphas = tuple(float(v) for v in alphas)
    if not lambdas or not alphas:
        raise ValueError("center_grid needs at least one lambda and one alpha")
    start = time.perf_counter()
    runs = {}
    for lam in lambdas:
        for a in alphas:
            runs[(lam, a)] = train_toy(data, lam, a, **train_kwargs)
            if progress:
                r = runs[(lam, a)]
                print(f"lambda={lam:g} alpha={a:g}: train acc {r.train_accuracy:.2f}, "
                      f"spread {r.train_stats['intra_class_spread']:.3g}  ({r.seconds:.1f} s)")
    return CenterGrid(lambdas, alphas, runs, data.class_names, data.tag, data.held_out,
                      time.perf_counter() - start, dict(train_kwargs))
