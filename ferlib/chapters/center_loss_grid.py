r"""Chapter 03's picture of center loss: 2-D (or 3-D) deep features over a grid of lambda and alpha.

Defined in chapter 03 (``notebooks/03_center_loss``).

Wen et al. (2016) showed what center loss does with a network whose last hidden layer
has two units, so that the deep features can be plotted as they are.  Chapter 03
redraws that picture on faces, once per (lambda, alpha) of a grid, so that sliders can
switch between runs at once: :func:`center_grid` trains every cell beforehand and
keeps the results in memory.

Every cell is an ordinary training run: :class:`~ferlib.train.trainer.Trainer` with
:class:`~ferlib.losses.center.SoftmaxCenterLoss` as its criterion (``L = L_S + lambda
L_C``, DenseNet-CL Eq. 5; centers moved by the rule, Eq. 4 and 6, in ``after_step``)
and :class:`~ferlib.data.batches.DeviceBatchSource` batches -- the same step as every
recipe, only the parts are small:

* input: faces average-pooled from 48x48 to ``48 // pool`` pixels a side
  (:func:`pool_faces`), standardised per pixel with the Training statistics
  (DenseNet-CL §IV-C's per-pixel normalisation) and flattened.  By default the embedded
  synthetic faces (:func:`toy_face_data`): the same picture on every machine, in
  seconds;
* model: :class:`~ferlib.models.embedding_net.EmbeddingNet`, ``in -> 64 -> 64 -> d``
  with PReLU (Wen et al.'s MNIST net, shrunk), ``d = 2`` or ``3``, then a linear
  7-way classifier;
* optimiser: Adam at a constant learning rate, ``epochs`` epochs of full batches.

Every run of a grid starts from the same weights and sees the same batches (both
depend on ``seed`` only), so two runs differ only in lambda and alpha.  The
features shown are those after the last step; nothing is selected on the held-out
split.  Each :class:`CenterRun` keeps the Training and held-out features, the
centers, the loss terms during training, the accuracies and the numbers the chapter
reports: intra-class spread, inter-class distance and their scale-free ratio
(:mod:`ferlib.evaluate.separation`), and the *center lag* -- how far each center
trails the mean of its class (what alpha controls).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.batches import DeviceBatchSource
from ..data.normalize import PixelStandardizer
from ..evaluate.metrics import predict
from ..evaluate.separation import separation_stats
from ..losses.center import SoftmaxCenterLoss
from ..models.embedding_net import EmbeddingNet
from ..train.callbacks import Callback
from ..train.precision import torch_threads
from ..train.schedules import Schedule
from ..train.trainer import Trainer

__all__ = [
    "pool_faces",
    "ToyFaces",
    "toy_face_data",
    "CenterRun",
    "train_center_run",
    "CenterGrid",
    "center_grid",
    "grid_settings",
]


# -- data -----------------------------------------------------------------------------------

def pool_faces(pixels: np.ndarray, pool: int) -> np.ndarray:
    """uint8 ``(N, 48, 48)`` faces average-pooled over ``pool x pool`` blocks, rounded back to uint8."""
    if pool < 1 or 48 % pool:
        raise ValueError(f"pool must divide 48 (1, 2, 3, 4, 6, 8, ...), got {pool}")
    x = torch.as_tensor(np.asarray(pixels), dtype=torch.float32).unsqueeze(1)
    if pool > 1:
        x = F.avg_pool2d(x, pool)
    return x.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()


@dataclass(frozen=True)
class ToyFaces:
    """Small faces of two splits and the per-pixel standardiser fitted on the first (Training)."""

    train_pixels: np.ndarray  # uint8 (n, s, s), s = 48 // pool
    train_labels: np.ndarray  # int64 (n,)
    test_pixels: np.ndarray
    test_labels: np.ndarray
    class_names: tuple
    tag: str
    normalizer: PixelStandardizer
    held_out: str = "PublicTest"

    @property
    def image_size(self) -> int:
        return int(self.train_pixels.shape[-1])

    @property
    def in_dim(self) -> int:
        return self.image_size ** 2

    def source(self, split: str, *, training: bool = False, batch_size: int = 128, seed: int = 0,
               device="cpu") -> DeviceBatchSource:
        """The faces of ``split`` (``"train"`` or ``"test"``, the held-out split) as flat standardised vectors.

        ``training=True``: shuffled full batches of ``batch_size``, a new order each epoch
        (the last, smaller batch is dropped); otherwise every face, in order.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        pixels, labels = ((self.train_pixels, self.train_labels) if split == "train"
                          else (self.test_pixels, self.test_labels))
        return DeviceBatchSource(pixels, labels, batch_size=batch_size if training else max(batch_size, 256),
                                 device=device, normalize=self.normalizer, transform=nn.Flatten(),
                                 shuffle=training, drop_last=training, seed=seed)


def toy_face_data(dataset=None, *, n_per_class: int = 150, pool: int = 3, seed: int = 0,
                  held_out: str = "PublicTest") -> ToyFaces:
    """Training and ``held_out`` faces of ``dataset`` pooled to ``48 // pool`` pixels a side.

    ``dataset``: a :class:`~ferlib.data.dataset.FERDataset`; ``None`` draws
    ``n_per_class`` synthetic faces per class (80/10/10 split).  The per-pixel mean and
    std come from Training alone; the held-out faces are only shown, nothing is
    selected on them.
    """
    if pool < 1 or 48 % pool:
        raise ValueError(f"pool must divide 48 (1, 2, 3, 4, 6, 8, ...), got {pool}")
    if dataset is None:
        from ..data.synthetic import make_synthetic_faces

        dataset = make_synthetic_faces(n_per_class=n_per_class, seed=seed)
    parts = {}
    for split in ("Training", held_out):
        part = dataset.split(split)
        if len(part) == 0:
            raise ValueError(f"toy_face_data: split {split!r} of {dataset.tag} is empty")
        parts[split] = (pool_faces(part.pixels, pool), np.asarray(part.labels, dtype=np.int64))
    (x_tr, y_tr), (x_te, y_te) = parts["Training"], parts[held_out]
    return ToyFaces(x_tr, y_tr, x_te, y_te, tuple(dataset.class_names), dataset.tag,
                    PixelStandardizer.fit(x_tr), held_out)


# -- one run --------------------------------------------------------------------------------

class LossTrace(Callback):
    """Records the criterion's terms (``ce``, and ``L_C`` unweighted as ``center``) every ``every`` steps."""

    def __init__(self, every: int):
        self.every = max(1, int(every))
        self.history: dict = {"step": [], "ce": [], "center": []}

    def record(self, trainer) -> None:
        terms = trainer.criterion.last_terms
        self.history["step"].append(trainer.state.steps)
        self.history["ce"].append(float(terms["ce"]))
        self.history["center"].append(float(terms["center"]))

    def on_step_end(self, trainer) -> None:
        if trainer.state.steps % self.every == 0:
            self.record(trainer)

    def on_fit_end(self, trainer) -> None:
        if not self.history["step"] or self.history["step"][-1] != trainer.state.steps:
            self.record(trainer)


def center_lag(features, labels, centers) -> float:
    """Mean over the classes present of ``||c_j - mean_j||``: how far the centers trail their class means."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    present, inv = torch.unique(y, return_inverse=True)
    if present.numel() == 0:
        return float("nan")
    counts = torch.bincount(inv, minlength=len(present)).to(f.dtype)
    means = torch.zeros(len(present), f.shape[1], dtype=f.dtype).index_add_(0, inv, f) / counts.unsqueeze(1)
    return float((c[present] - means).norm(dim=1).mean())


@dataclass
class CenterRun:
    """The outcome of :func:`train_center_run` (arrays are numpy on the CPU)."""

    lambda_: float
    alpha: float
    feature_dim: int
    epochs: int
    steps: int
    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    centers: np.ndarray
    history: dict  # {"step": [...], "ce": [...], "center": [...]}: batch values, L_C unweighted
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


def train_center_run(data: ToyFaces, lambda_: float, alpha: float, *, feature_dim: int = 2, epochs: int = 50,
                     batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 1e-4, hidden: int = 64,
                     seed: int = 0, log_every: int = 10, reduction: str = "mean", threads: int | None = 1,
                     device="cpu") -> CenterRun:
    """Train :class:`EmbeddingNet` with ``L = L_S + lambda * L_C`` (DenseNet-CL Eq. 5) through the Trainer.

    The initial weights and the batches depend on ``seed`` only, never on lambda or
    alpha.  ``threads``: torch threads while training (restored afterwards).  The
    Trainer's checkpoints go to a temporary folder, deleted on return.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size > len(data.train_labels):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(data.train_labels)} Training faces; "
                         "use a smaller batch_size or more faces (n_per_class)")
    start = time.perf_counter()
    k = len(data.class_names)
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="ferlib_center_grid_") as run_dir:
        torch.manual_seed(seed)
        net = EmbeddingNet(data.in_dim, feature_dim, hidden, k).to(device)
        crit = SoftmaxCenterLoss(k, feature_dim, lambda_=lambda_, alpha=alpha, reduction=reduction).to(device)
        opt = torch.optim.Adam([{"params": net.parameters()}, *crit.extra_param_groups()], lr=lr,
                               weight_decay=weight_decay)
        train_source = data.source("train", training=True, batch_size=batch_size, seed=seed, device=device)
        test_source = data.source("test", device=device)
        trace = LossTrace(log_every)
        trainer = Trainer(model=net, criterion=crit, optimizer=opt, schedule=Schedule(opt),
                          train_source=train_source, val_source=test_source, run_dir=run_dir, epochs=epochs,
                          callbacks=[trace], name=f"center grid lambda={lambda_:g} alpha={alpha:g}", log=False)
        state = trainer.fit(resume=False)
        lo_tr, y_tr, f_tr = predict(net, data.source("train", device=device), return_features=True)
        lo_te, y_te, f_te = predict(net, test_source, return_features=True)
        centers = crit.centers.detach().cpu().numpy().astype(np.float32)
    f_tr, f_te = f_tr.numpy().astype(np.float32), f_te.numpy().astype(np.float32)
    y_tr, y_te = y_tr.numpy(), y_te.numpy()
    return CenterRun(
        lambda_=float(lambda_), alpha=float(alpha), feature_dim=int(feature_dim), epochs=int(epochs),
        steps=int(state.steps), train_features=f_tr, train_labels=y_tr, test_features=f_te, test_labels=y_te,
        centers=centers, history=trace.history,
        train_accuracy=float((lo_tr.argmax(1).numpy() == y_tr).mean()),
        test_accuracy=float((lo_te.argmax(1).numpy() == y_te).mean()),
        train_stats=separation_stats(f_tr, y_tr), test_stats=separation_stats(f_te, y_te),
        center_lag=center_lag(f_tr, y_tr, centers), seconds=time.perf_counter() - start)


# -- the grid -------------------------------------------------------------------------------

@dataclass
class CenterGrid:
    """Runs keyed by ``(lambda, alpha)``, trained from the same start on the same batches."""

    lambdas: tuple
    alphas: tuple
    runs: dict  # {(lambda, alpha): CenterRun}
    class_names: tuple
    tag: str
    held_out: str = "PublicTest"
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    def run(self, lambda_: float, alpha: float) -> CenterRun:
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
        return {"lambdas": (0.0, 0.01, 0.1, 1.0), "alphas": (0.1, 0.5, 0.9), "epochs": 50, "n_per_class": 150}
    return {"lambdas": (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
            "alphas": (0.1, 0.5, 0.9, 1.5, 1.9), "epochs": 90, "n_per_class": 400}


def center_grid(data: ToyFaces, lambdas=(0.0, 0.01, 0.1, 1.0), alphas=(0.1, 0.5, 0.9), *,
                progress: bool = False, **train_kwargs) -> CenterGrid:
    """Train one :func:`train_center_run` per ``(lambda, alpha)``; all are kept in memory."""
    lambdas = tuple(float(v) for v in lambdas)
    alphas = tuple(float(v) for v in alphas)
    if not lambdas or not alphas:
        raise ValueError("center_grid needs at least one lambda and one alpha")
    start = time.perf_counter()
    runs = {}
    for lam in lambdas:
        for a in alphas:
            runs[(lam, a)] = r = train_center_run(data, lam, a, **train_kwargs)
            if progress:
                print(f"lambda={lam:g} alpha={a:g}: train acc {r.train_accuracy:.2f}, "
                      f"spread {r.train_stats['intra_class_spread']:.3g}  ({r.seconds:.1f} s)")
    return CenterGrid(lambdas, alphas, runs, data.class_names, data.tag, data.held_out,
                      time.perf_counter() - start, dict(train_kwargs))
