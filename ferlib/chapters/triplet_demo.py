r"""Chapter 04's short triplet runs: which triplets carry a gradient while a small network trains.

Defined in chapter 04 (``notebooks/04_exponential_triplet_loss``).

Each run is an ordinary training run -- :class:`~ferlib.train.trainer.Trainer` with a
:class:`~ferlib.losses.triplet.TripletCriterion` (DNNRL Eq. 1 with the sign of Eq. 2-4, or
FaceNet's hinge) and :class:`~ferlib.data.batches.DeviceBatchSource` batches -- only small:

* input: faces average-pooled to 16x16 and standardised per pixel with the Training statistics
  (chapter 03's :class:`~ferlib.chapters.center_loss_grid.ToyFaces`), flattened;
* model: :class:`SphereEmbedding`, an MLP ``in -> hidden -> hidden -> d`` whose output is
  L2-normalised, so the embedding lives on the unit sphere and ``r`` in ``[-4, 4]`` as in DNNRL;
* optimiser: Adam at a constant rate; shuffled full batches, whole epochs.

:class:`TripletTrace`, a callback, logs every ``log_every`` steps the share of the mined
training triplets that are *active* (``r > gamma``: they have a gradient), and on a fixed
set of held-out triplets the share correctly ordered (``r > 0``) and the mean ``r`` of the
correctly and of the wrongly ordered ones.  Every run starts from the same weights and sees
the same batches (both depend on ``seed`` only).
"""
from __future__ import annotations

import math
import tempfile

import torch
from torch import nn
from torch.nn import functional as F

from ..evaluate.knn import knn_predict
from ..losses.triplet import TripletCriterion, relative_distance
from ..models.embedding_net import EmbeddingNet
from ..train.callbacks import Callback
from ..train.precision import torch_threads
from ..train.schedules import Schedule
from ..train.trainer import Trainer
from ..train.validation import KNNValidator, predict_embeddings

__all__ = ["SphereEmbedding", "TripletTrace", "short_triplet_run", "HISTORY_KEYS"]

HISTORY_KEYS = ("step", "active", "held-out: correctly ordered", "held-out: mean r of the correct",
                "held-out: mean r of the wrong")


class SphereEmbedding(nn.Module):
    """An MLP embedding on the unit sphere: ``forward_with_features(x) -> (None, unit vectors)`` (no head)."""

    def __init__(self, in_dim: int, feature_dim: int = 32, hidden: int = 128):
        super().__init__()
        self.features = EmbeddingNet(in_dim, feature_dim=feature_dim, hidden=hidden).features

    def forward_with_features(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, F.normalize(self.features(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[1]


class TripletTrace(Callback):
    """Logs the active share of the training triplets and the order of fixed held-out triplets.

    ``held_out``: an in-order source of the held-out faces; ``triplets``: three index tensors
    (anchor, positive, negative) into it.  The held-out numbers are measured before the first
    step and every ``every`` steps after it, with the weights of that moment (eval mode); the
    active share is that of the batch of the step just taken.
    """

    def __init__(self, held_out, triplets, every: int):
        self.held_out, self.triplets, self.every = held_out, triplets, max(1, int(every))
        self.history = {k: [] for k in HISTORY_KEYS}

    def _held_out(self, trainer) -> None:
        e, _ = predict_embeddings(trainer.model, self.held_out)
        r = relative_distance(*(e[i] for i in self.triplets))
        right, wrong = r[r > 0], r[r <= 0]
        self.history["step"].append(trainer.state.steps)
        self.history["held-out: correctly ordered"].append(float((r > 0).float().mean()))
        self.history["held-out: mean r of the correct"].append(float(right.mean()) if len(right) else math.nan)
        self.history["held-out: mean r of the wrong"].append(float(wrong.mean()) if len(wrong) else math.nan)

    def on_fit_start(self, trainer) -> None:
        self._held_out(trainer)

    def on_step_end(self, trainer) -> None:
        steps = trainer.state.steps
        if (steps - 1) % self.every == 0:  # the batch of the step just taken, at steps 0, every, 2 every, ...
            self.history["active"].append(float(trainer.criterion.last_terms["active_fraction"]))
        if steps % self.every == 0:
            self._held_out(trainer)

    def on_fit_end(self, trainer) -> None:
        if self.history["step"][-1] != trainer.state.steps:
            self._held_out(trainer)
        while len(self.history["active"]) < len(self.history["step"]):  # the last log has no step after it
            self.history["active"].append(self.history["active"][-1] if self.history["active"] else math.nan)


def short_triplet_run(data, held_out_triplets, *, mining: str = "all", loss: str = "exponential",
                      alpha: float = 0.2, gamma: float = 0.0, margin: float = 0.2, steps: int = 300,
                      log_every: int = 10, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                      feature_dim: int = 32, hidden: int = 128, knn_k: int = 5, threads: int | None = 1):
    """Train a :class:`SphereEmbedding` with a :class:`TripletCriterion` for about ``steps`` steps.

    The Trainer runs whole epochs of shuffled full batches: ``steps`` is rounded to the nearest
    whole number of epochs (at least one); the history's last ``step`` is the count taken.

    ``data``: a :class:`~ferlib.chapters.center_loss_grid.ToyFaces` (Training and held-out faces);
    ``held_out_triplets``: index tensors into its held-out faces.  Returns ``(history, accuracy)``:
    the :class:`TripletTrace` history and the held-out ``knn_k``-NN accuracy among the Training
    embeddings after the last step (k fixed beforehand, not tuned).
    """
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="ferlib_triplet_demo_") as run_dir:
        torch.manual_seed(seed)
        net = SphereEmbedding(data.in_dim, feature_dim, hidden)
        crit = TripletCriterion(loss, alpha=alpha, gamma=gamma, margin=margin, mining=mining, reduction="mean")
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        train = data.source("train", training=True, batch_size=batch_size, seed=seed)
        per_epoch = max(1, len(data.train_labels) // batch_size)
        trace = TripletTrace(data.source("test"), held_out_triplets, log_every)
        trainer = Trainer(model=net, criterion=crit, optimizer=opt, schedule=Schedule(opt), train_source=train,
                          val_source=data.source("test"), run_dir=run_dir, epochs=max(1, round(steps / per_epoch)),
                          validator=KNNValidator(data.source("train"), k=knn_k), callbacks=[trace],
                          name=f"triplet demo {loss} {mining}", log=False)
        trainer.fit(resume=False)
        tr, y_tr = predict_embeddings(net, data.source("train"))
        te, y_te = predict_embeddings(net, data.source("test"))
        acc = float((knn_predict(tr, y_tr, te, k=knn_k) == y_te).float().mean())
    return trace.history, acc
