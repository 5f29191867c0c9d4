"""From a recipe to the built parts of a run: ``build_run(recipe, data, ...)``.

Everything the :class:`~ferlib.train.trainer.Trainer` receives is made here through
registries -- models, augmentations, criteria (:mod:`ferlib.train.criteria`), optimisers
(:data:`OPTIMIZERS`: one group of every trainable model parameter, weight decay on all as
the DenseNet reference code does, plus the criterion's own groups; fused on CUDA, foreach
on the CPU), schedules -- so that a new loss, optimiser or schedule never edits the trainer.
A k-NN readout (``classifier="knn"``) is validated by a
:class:`~ferlib.train.validation.KNNValidator` against ``KNN_REFERENCE_PER_CLASS``
Training faces per class; a recipe's ``protocol`` (DNNRL §4) is a callback.  A wall-clock
budget (``minutes``) trains on the whole splits with ``warmup-cosine`` (a per-epoch step decay,
which needs no end, is kept: :func:`~ferlib.train.schedules.budget_schedule`) and a
:class:`~ferlib.train.callbacks.TimeBudget`, and without the protocol (its cuts would fight
the cosine, its stop rule the plan).  ``compile`` (see
:class:`~ferlib.train.precision.CompiledTrainingForward`) is refused where inductor cannot
run and under torchrun, where (:mod:`ferlib.train.distributed`) the Training source serves
this rank's slice of each global batch and :func:`~ferlib.train.distributed.distribute`
wraps the parts.  A transfer-learning recipe (``frozen_phase``, EmoNet §5) gets a
:class:`~ferlib.train.schedules.PhasedOptimizer` (the frozen phase's optimiser over what stays
trainable, the recipe's over all) and a :class:`~ferlib.train.schedules.FreezeThenFineTune` around
its schedule; a model with ``side_inputs`` (EmoNet's BOVW) gets them computed once per split
(:mod:`ferlib.features.side_inputs`, cached), its standardiser fitted on Training's, and carried by
every batch source.  Neither runs under torchrun.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data.batches import DeviceBatchSource
from ..data.dataset import stratified_subset
from ..data.normalize import fit_normalizer
from ..data.splits import PreparedData
from ..data.transforms import get_augment
from ..models import build_model
from .callbacks import (LongRunWarning, MidEpochCheckpoint, ProgressBar, SaveOnInterrupt, StopAfterSteps,
                        TimeBudget)
from .checkpoint import describe_model
from .criteria import build_criterion
from .distributed import current as current_process_group
from .distributed import distribute
from .precision import CompiledTrainingForward, compile_unavailable_reason, resolve_precision
from .protocols import build_protocol
from .recipes import Recipe
from .schedules import FreezeThenFineTune, PhasedOptimizer, budget_schedule, build_schedule
from .trainer import Trainer
from .validation import KNN_REFERENCE_PER_CLASS, KNNValidator, SoftmaxValidator


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


def build_phased_optimizer(recipe: Recipe, model, criterion, device: torch.device) -> PhasedOptimizer:
    """EmoNet §5's two optimisers: the frozen phase's (Adam 1e-3) over what stays trainable with the pretrained
    block frozen, and the recipe's (SGD, Nesterov 0.9) over every parameter.  Leaves the block frozen (phase 0)."""
    if not hasattr(model, "set_pretrained_frozen"):
        raise ValueError(f"recipe {recipe.name!r} has a frozen phase, but model {recipe.model!r} has no pretrained "
                         f"block to freeze (set_pretrained_frozen)")
    fp = recipe.frozen_phase
    model.set_pretrained_frozen(False)
    fine_tune = build_optimizer(recipe, model, criterion, device)
    model.set_pretrained_frozen(True)
    frozen = build_optimizer(replace(recipe, optimizer=fp.optimizer, lr=fp.lr, weight_decay=fp.weight_decay),
                             model, criterion, device)
    return PhasedOptimizer([frozen, fine_tune])


def final_eval_passes(recipe: Recipe, sizes: dict) -> int:
    """The final evaluation's cost in PublicTest-sized forward passes (what a budget must leave time for):
    a softmax head's selected epoch and last-five ensemble on PublicTest and PrivateTest
    (``TimeBudget.FINAL_EVAL_PASSES``), and for a k-NN readout the embedding of all three splits."""
    passes = TimeBudget.FINAL_EVAL_PASSES if recipe.classifier == "softmax" else 0
    if recipe.uses_knn:
        passes += math.ceil((sizes["train"] + sizes["val"] + sizes["test"]) / max(1, sizes["val"]))
    return passes


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
    common: dict  # device, normaliser and channels_last of every source: for more evaluation sources
    side_inputs: tuple = ()  # per-sample inputs the model takes beside the image (EmoNet's "bovw")

    def eval_source(self, split) -> DeviceBatchSource:
        """An in-order source over a :class:`~ferlib.data.dataset.FERDataset` (evaluation transform, no randomness)."""
        return DeviceBatchSource.for_eval(split.pixels, split.labels, batch_size=max(256, self.recipe.batch_size),
                                          augment=self.augment, extra=side_inputs(self.side_inputs, split),
                                          **self.common)


def build_run(recipe: Recipe, data: PreparedData, *, profile: str, seed: int = 0, device=None,
              run_dir: str | Path, precision: str | None = "auto", minutes: float | None = None,
              epochs: int | None = None, progress: bool = True, checkpoint_every_steps: int | None = None,
              checkpoint_interval_s: float = 300.0, stop_after_steps: int | None = None,
              started: float | None = None, extra_callbacks=(), compile: bool = False) -> Run:
    """The parts of a run of ``recipe`` on ``data``, built in the order below (the seeded draws depend on it).

    ``profile`` gives the epochs (``epochs`` overrides them) and the batch size; ``minutes`` a
    wall-clock budget instead (the recipe's batch, the cosine schedule, a :class:`TimeBudget`
    counting from ``started``, wall-clock seconds).  ``stop_after_steps``: a planned stop
    (:class:`~ferlib.train.callbacks.StopTraining`), for tests and measurements.
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    group = current_process_group()
    _check_compile(compile, device, group)
    torch.manual_seed(seed)
    p = _model_parts(recipe, data, device, channels_last=precision == "bf16")  # model, criterion, optimiser
    if group and (recipe.frozen_phase or p.side_inputs):
        raise ValueError(f"recipe {recipe.name!r} (a frozen phase or side inputs) is not supported under torchrun in "
                         f"ferlib; train it in one process")
    batch_size = recipe.batch_size if minutes else recipe.batch_size_for(profile)
    train_source, val_source, test_source = _sources(recipe, data, p, batch_size, seed, group, progress)
    schedule_name = budget_schedule(recipe.schedule) if minutes else recipe.schedule
    schedule = _schedule(schedule_name, recipe, p, len(train_source), None if minutes else profile)
    budget = _budget(recipe, data, minutes, started)
    callbacks = [*_callbacks(recipe, profile, budget, progress, checkpoint_every_steps, checkpoint_interval_s),
                 *extra_callbacks, *([StopAfterSteps(stop_after_steps)] if stop_after_steps is not None else [])]
    validator = _validator(recipe, data, p, seed)
    model, criterion = p.model, p.criterion
    if group:
        model, criterion, validator, callbacks = distribute(group, model=model, criterion=criterion,
                                                            optimizer=p.optimizer, validator=validator,
                                                            callbacks=callbacks, seed=seed)
    n_epochs = epochs if epochs is not None else recipe.budget(profile).epochs
    identity = {"recipe": recipe.to_dict(), "profile": profile, "seed": seed, "data": data.description,
                "epochs": None if minutes else n_epochs, "minutes": minutes, "precision": precision}
    trainer = Trainer(model=model, criterion=criterion, optimizer=p.optimizer, schedule=schedule,
                      train_source=train_source, val_source=val_source, run_dir=run_dir, epochs=n_epochs,
                      precision=precision, identity=identity, describe_model=p.describe, callbacks=callbacks,
                      early_stopping_patience=recipe.early_stopping_patience, validator=validator,
                      select_on=recipe.select_on, name=recipe.name, log=progress,
                      train_forward=CompiledTrainingForward(p.model) if compile else None)
    return Run(trainer, recipe, data, p.augment, p.normalizer, test_source, budget, schedule_name, p.common,
               p.side_inputs)


def _schedule(name: str, recipe: Recipe, p: "ModelParts", steps_per_epoch: int, profile: str | None):
    """The recipe's schedule; with a frozen phase, wrapped in :class:`FreezeThenFineTune` (the fine-tuning
    optimiser's schedule inside; ``profile`` None = a wall-clock budget, which keeps the recipe's frozen epochs)."""
    if not isinstance(p.optimizer, PhasedOptimizer):
        return build_schedule(name, recipe, p.optimizer, steps_per_epoch)
    fine_tune = build_schedule(name, recipe, p.optimizer.optimizers[1], steps_per_epoch)
    return FreezeThenFineTune(p.optimizer, model=p.model, frozen_epochs=recipe.frozen_epochs_for(profile),
                              fine_tune=fine_tune, steps_per_epoch=steps_per_epoch)


def side_inputs(names, split, progress: bool | None = None) -> dict | None:
    """The per-sample side inputs ``names`` of a split (computed once per data set and cached), or None.
    ``progress``: the bar of a first computation (None: shown for large splits; ``train --quiet``: False)."""
    if not names:
        return None
    from ..features.side_inputs import side_inputs_for

    return side_inputs_for(names, split, progress=progress)


def _check_compile(compile: bool, device: torch.device, group) -> None:
    reason = compile and (compile_unavailable_reason(device) or (
        "torch.compile is not supported under torchrun in ferlib; drop --compile" if group else None))
    if reason:
        raise ValueError(reason)


@dataclass
class ModelParts:
    """The model, its criterion and optimiser, and what turns pixels into its input."""

    model: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    normalizer: torch.nn.Module
    augment: object
    common: dict  # device, normaliser and channels_last of every batch source
    describe: object  # () -> the model-only checkpoint fields (architecture, normalisation, classes)
    side_inputs: tuple = ()  # what the model takes beside the image (EmoNet's "bovw")


def _model_parts(recipe: Recipe, data: PreparedData, device: torch.device, channels_last: bool) -> ModelParts:
    normalizer = fit_normalizer(recipe.normalization, data.train.pixels)
    augment = replace(get_augment(recipe.augment, **recipe.augment_kwargs), out_size=recipe.input_size)
    num_classes, in_channels = len(data.class_names), augment.channels
    model_kwargs = {"num_classes": num_classes, "in_channels": in_channels, **recipe.model_kwargs}
    model = build_model(recipe.model, **model_kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(recipe.criterion, num_classes, model.feature_dim).to(device)
    rebuild_kwargs = getattr(model, "checkpoint_kwargs", model_kwargs)  # EmoNet: no weights file read on loading
    describe = lambda: describe_model(  # noqa: E731
        model_name=recipe.model, model_kwargs=rebuild_kwargs, normalizer=normalizer,
        normalization=recipe.normalization, eval_transform=augment.to_dict(), input_size=recipe.input_size,
        in_channels=in_channels, class_names=data.class_names, recipe=recipe.to_dict())
    optimizer = (build_phased_optimizer if recipe.frozen_phase else build_optimizer)(recipe, model, criterion, device)
    return ModelParts(model, criterion, optimizer, normalizer, augment,
                      dict(device=device, normalize=normalizer, channels_last=channels_last), describe,
                      tuple(getattr(model, "side_inputs", ())))


def _eval_source(split, p: ModelParts, recipe: Recipe, progress: bool | None = None) -> DeviceBatchSource:
    return DeviceBatchSource.for_eval(split.pixels, split.labels, batch_size=max(256, recipe.batch_size),
                                      augment=p.augment, extra=side_inputs(p.side_inputs, split, progress), **p.common)


def _sources(recipe: Recipe, data: PreparedData, p: ModelParts, batch_size: int, seed: int, group, progress: bool):
    """Training (this rank's slice of each global batch under torchrun), PublicTest and PrivateTest.

    Side inputs (EmoNet's BOVW) are computed once per split; the model's standardiser is fitted on Training's."""
    shard = {"rank": group.rank, "world_size": group.world_size} if group else {}
    bar = None if progress else False  # a quiet run shows no bar of the side inputs' first computation
    train_side = side_inputs(p.side_inputs, data.train, bar)
    if train_side is not None:
        p.model.fit_side_inputs(train_side)
    train = DeviceBatchSource(data.train.pixels, data.train.labels, batch_size=batch_size, augment=p.augment,
                              shuffle=True, seed=seed, drop_last=recipe.drop_last, sampler=recipe.sampler,
                              extra=train_side, **p.common, **shard)
    return train, _eval_source(data.val, p, recipe, bar), _eval_source(data.test, p, recipe, bar)


def _budget(recipe: Recipe, data: PreparedData, minutes: float | None, started: float | None) -> TimeBudget | None:
    if not minutes:
        return None
    passes = final_eval_passes(recipe, {"train": len(data.train), "val": len(data.val), "test": len(data.test)})
    return TimeBudget(minutes, started=started or time.time(), final_eval_passes=passes)


def _callbacks(recipe: Recipe, profile: str, budget: TimeBudget | None, progress: bool,
               checkpoint_every_steps: int | None, checkpoint_interval_s: float) -> list:
    """Budget first (its plan is what the others show), then the protocol (not under a budget), checkpoints,
    Ctrl-C, the long-run warning (an epoch budget of the full profile) and the progress bar."""
    callbacks = [budget] if budget else []
    if recipe.protocol and not budget:
        callbacks.append(build_protocol(recipe.protocol, recipe))
    callbacks += [MidEpochCheckpoint(checkpoint_every_steps, checkpoint_interval_s), SaveOnInterrupt()]
    if budget is None and profile == "full":
        callbacks.append(LongRunWarning())
    if progress:
        callbacks.append(ProgressBar(recipe.name, budget))
    return callbacks


def _validator(recipe: Recipe, data: PreparedData, p: ModelParts, seed: int):
    """k-NN against a class-stratified reference subset of Training for a k-NN readout, else the softmax head."""
    if recipe.classifier != "knn":
        return SoftmaxValidator()
    reference = _eval_source(stratified_subset(data.train, KNN_REFERENCE_PER_CLASS, seed), p, recipe)
    loss = p.criterion if callable(getattr(p.criterion, "validation_loss", None)) else None
    return KNNValidator(reference, loss, metric=recipe.knn_metric)
