"""From a recipe to the built parts of a run: ``build_run(recipe, data, ...)``.

Everything the :class:`~ferlib.train.trainer.Trainer` receives is made here through
registries -- models (:mod:`ferlib.models.registry`), augmentations
(:data:`ferlib.data.transforms.PRESETS`), criteria (:mod:`ferlib.train.criteria`),
optimisers (:data:`OPTIMIZERS`), schedules (:mod:`ferlib.train.schedules`) -- so that
a new loss, optimiser or schedule never edits the trainer.

Optimiser: every trainable parameter of the model in one group (weight decay on all of
them, BatchNorm and biases included, as the DenseNet reference code does), plus the
criterion's own groups.  Fused kernels on CUDA, ``foreach`` on the CPU.

Wall-clock budget (``minutes``): the whole splits, the ``warmup-cosine`` schedule
(the plateau rule needs an open-ended number of epochs), and a
:class:`~ferlib.train.callbacks.TimeBudget` that plans the epochs from measured
throughput.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data.batches import DeviceBatchSource
from ..data.normalize import fit_normalizer
from ..data.splits import PreparedData
from ..data.transforms import get_augment
from ..models import build_model
from .callbacks import MidEpochCheckpoint, ProgressBar, StopAfterSteps, TimeBudget
from .checkpoint import describe_model
from .criteria import build_criterion
from .precision import resolve_precision
from .recipes import Recipe
from .schedules import build_schedule
from .trainer import Trainer


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _sgd(recipe, groups, **fast):
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                           weight_decay=recipe.weight_decay, **fast)


def _adam(recipe, groups, **fast):
    return torch.optim.Adam(groups, lr=recipe.lr, weight_decay=recipe.weight_decay, **fast)


OPTIMIZERS = {"sgd": _sgd, "adam": _adam}


def build_optimizer(recipe: Recipe, model, criterion, device: torch.device) -> torch.optim.Optimizer:
    if recipe.optimizer not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {recipe.optimizer!r}; known: {', '.join(sorted(OPTIMIZERS))}")
    groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups += [{k: v for k, v in g.items() if k != "name"} for g in criterion.extra_param_groups()]
    make = OPTIMIZERS[recipe.optimizer]
    try:
        return make(recipe, groups, **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    except (RuntimeError, TypeError, ValueError):  # fused unsupported for this torch / dtype
        return make(recipe, groups)


@dataclass
class Run:
    """A built run: the trainer and what evaluation after training needs."""

    trainer: Trainer
    recipe: Recipe
    data: PreparedData
    augment: object
    normalizer: torch.nn.Module
    test_source: DeviceBatchSource
    budget: TimeBudget | None
    schedule_name: str


def build_run(recipe: Recipe, data: PreparedData, *, profile: str, seed: int = 0, device=None,
              run_dir: str | Path, precision: str | None = "auto", minutes: float | None = None,
              epochs: int | None = None, progress: bool = True, checkpoint_every_steps: int | None = None,
              checkpoint_interval_s: float = 300.0, stop_after_steps: int | None = None,
              started: float | None = None, extra_callbacks=()) -> Run:
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    channels_last = precision == "bf16"
    torch.manual_seed(seed)
    normalizer = fit_normalizer(recipe.normalization, data.train.pixels)
    augment = replace(get_augment(recipe.augment, **recipe.augment_kwargs), out_size=recipe.input_size)
    num_classes, in_channels = len(data.class_names), augment.channels
    model_kwargs = {"num_classes": num_classes, "in_channels": in_channels, **recipe.model_kwargs}
    model = build_model(recipe.model, **model_kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(recipe.criterion, num_classes, model.feature_dim).to(device)
    optimizer = build_optimizer(recipe, model, criterion, device)
    common = dict(device=device, normalize=normalizer, channels_last=channels_last)
    train_source = DeviceBatchSource(data.train.pixels, data.train.labels, batch_size=recipe.batch_size,
                                     augment=augment, shuffle=True, seed=seed, **common)
    eval_bs = max(256, recipe.batch_size)
    val_source = DeviceBatchSource.for_eval(data.val.pixels, data.val.labels, batch_size=eval_bs,
                                            augment=augment, **common)
    test_source = DeviceBatchSource.for_eval(data.test.pixels, data.test.labels, batch_size=eval_bs,
                                             augment=augment, **common)
    schedule_name = "warmup-cosine" if minutes else recipe.schedule
    schedule = build_schedule(schedule_name, recipe, optimizer, len(train_source))
    n_epochs = epochs if epochs is not None else recipe.budget(profile).epochs
    budget = TimeBudget(minutes, started=started or time.time()) if minutes else None
    callbacks = [budget] if budget else []
    callbacks.append(MidEpochCheckpoint(checkpoint_every_steps, checkpoint_interval_s))
    if progress:
        callbacks.append(ProgressBar(recipe.name, budget))
    callbacks += list(extra_callbacks)
    if stop_after_steps is not None:
        callbacks.append(StopAfterSteps(stop_after_steps))
    identity = {"recipe": recipe.to_dict(), "profile": profile, "seed": seed, "data": data.description,
                "epochs": None if minutes else n_epochs, "minutes": minutes, "precision": precision}
    describe = lambda: describe_model(  # noqa: E731
        model_name=recipe.model, model_kwargs=model_kwargs, normalizer=normalizer,
        normalization=recipe.normalization, eval_transform=augment.to_dict(), input_size=recipe.input_size,
        in_channels=in_channels, class_names=data.class_names, recipe=recipe.to_dict())
    trainer = Trainer(model=model, criterion=criterion, optimizer=optimizer, schedule=schedule,
                      train_source=train_source, val_source=val_source, run_dir=run_dir, epochs=n_epochs,
                      precision=precision, identity=identity, describe_model=describe, callbacks=callbacks,
                      early_stopping_patience=recipe.early_stopping_patience, name=recipe.name, log=progress)
    return Run(trainer, recipe, data, augment, normalizer, test_source, budget, schedule_name)
