"""Learning-rate schedules behind one small interface, chosen by name in a recipe.

The trainer calls ``schedule.after_step()`` after every optimiser step and
``schedule.after_epoch(train_loss)`` after every epoch; each schedule acts on the one
it is defined by.  After any change of the learning rate the criterion hears of it
(``criterion.on_lr_change(optimizer)``), so a term with its own learning rate
(DenseNet-CL's center term, chapter 03, §"Two learning rates") follows at once.

* ``plateau`` -- DenseNet-CL (§IV-C): "decreased by 10 times whenever the training
  loss stops improving".  "Stops improving" = the epoch's mean training loss has not
  fallen by more than ``plateau_threshold`` (relative) below its best for
  ``plateau_patience`` epochs; the learning rate never goes below ``min_lr`` (the
  values are the recipe's; chapter 02, §"The training protocol", explains them).
  Implemented by :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`.  It needs an
  open-ended number of epochs, so it cannot be fitted into a wall-clock budget.
* ``warmup-cosine`` -- for a wall-clock budget (``--minutes``): linear warm-up over
  the first epoch, then a cosine from the recipe's lr to 0 over the planned steps.
  The total is set once the trainer has measured its throughput
  (:meth:`WarmupCosine.set_total_steps`); the warm-up does not depend on it.  A
  deviation from the paper, made because a budget fixes the number of steps in
  advance and a schedule defined by those steps uses all of them.
  A recipe may watch the **validation** loss instead (``plateau_on="val_loss"``, EmoNet §5: "Learning
  rate scheduler is used to shrink the learning rate by monitoring validation loss changes"), with
  its own ``plateau_factor``: the schedule's ``monitor`` names the record field the trainer passes.
* ``constant`` -- cl-resnet50 (Adam 1e-3 throughout).
* ``step-0.97-per-2-epochs`` -- Sobel-Laplacian-CL (§III-A): "Adam optimizer with an
  initial learning rate of 0.0003, which has been multiplied by a factor of 0.97 every 2
  epochs" (:class:`StepDecay`; any ``step-G-per-N-epochs`` name builds one).  The rate at
  epoch ``e`` (0-based) is ``lr * G ** (e // N)``, whatever the number of epochs, so this
  schedule is kept under a wall-clock budget (:func:`budget_schedule`): the budget only
  decides how many epochs it gets.

**Two phases** (EmoNet §5): :class:`FreezeThenFineTune` wraps any of these.  For the first
``frozen_epochs`` epochs the model's pretrained block is frozen and a first optimiser (Adam 1e-3)
trains the rest at a constant rate; then the block is unfrozen and the second optimiser (SGD,
Nesterov 0.9) trains everything under the wrapped schedule.  The two optimisers live in one
:class:`PhasedOptimizer`; the phase follows from the epochs done, which the schedule's
``state_dict`` keeps, so a run resumed on either side of the switch continues in its phase.
"""
from __future__ import annotations

import math
import re
import warnings
from typing import Callable

import torch


class Schedule:
    """Constant learning rate; the base of the others."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer

    def after_step(self) -> bool:
        """Called after each optimiser step; True when the lr changed."""
        return False

    def after_epoch(self, train_loss: float) -> bool:
        """Called after each epoch with its mean training loss; True when the lr changed."""
        return False

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Plateau(Schedule):
    """lr x ``factor`` when the monitored loss stalls (see the module docstring).

    ``monitor``: the epoch record's field the trainer passes to :meth:`after_epoch` -- ``"train_loss"``
    (DenseNet-CL) or ``"val_loss"`` (EmoNet).
    """

    def __init__(self, optimizer, *, patience: int, threshold: float, min_lr: float, factor: float = 0.1,
                 monitor: str = "train_loss"):
        super().__init__(optimizer)
        if monitor not in ("train_loss", "val_loss"):
            raise ValueError(f"monitor must be 'train_loss' or 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self._inner = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=factor, patience=patience, threshold=threshold,
            threshold_mode="rel", min_lr=min_lr)

    def after_epoch(self, train_loss: float) -> bool:
        before = self.lr
        self._inner.step(train_loss)
        return self.lr != before

    def state_dict(self) -> dict:
        return self._inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._inner.load_state_dict(state)


class WarmupCosine(Schedule):
    """Linear warm-up over ``warmup_steps``, then cosine to 0 at ``total_steps``.

    Each param group keeps its own base lr (``initial_lr``), so groups with their own
    rate are scaled alike.  Until :meth:`set_total_steps` is called the schedule stays
    at the end of the warm-up (the peak).
    """

    def __init__(self, optimizer, *, warmup_steps: int, total_steps: int | None = None):
        super().__init__(optimizer)
        self.warmup_steps = max(1, int(warmup_steps))
        self.total_steps = total_steps
        self.step_count = 0
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self._apply()

    def set_total_steps(self, total_steps: int) -> None:
        self.total_steps = int(total_steps)
        self._apply()

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.total_steps is None:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        t = min(1.0, (step - self.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * t))

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def after_step(self) -> bool:
        self.step_count += 1
        self._apply()
        return True

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict) -> None:
        self.step_count, self.total_steps = int(state["step_count"]), state["total_steps"]
        self.warmup_steps = int(state["warmup_steps"])
        self._apply()


class StepDecay(Schedule):
    """lr x ``gamma`` every ``every_epochs`` epochs: ``lr_e = lr_0 * gamma ** (e // every_epochs)`` (epoch e, 0-based).

    Each param group keeps its own base lr (``initial_lr``).  Counted in epochs (``after_epoch``),
    so a run resumed from a checkpoint (``state_dict``: the epochs done) continues on the same curve.
    """

    def __init__(self, optimizer, *, gamma: float, every_epochs: int):
        super().__init__(optimizer)
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if int(every_epochs) != every_epochs or every_epochs < 1:
            raise ValueError(f"every_epochs must be a positive integer, got {every_epochs}")
        self.gamma, self.every_epochs = float(gamma), int(every_epochs)
        self.epochs_done = 0
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self._apply()

    def factor(self, epoch: int) -> float:
        """The lr multiplier during epoch ``epoch`` (0-based)."""
        return self.gamma ** (int(epoch) // self.every_epochs)

    def _apply(self) -> None:
        f = self.factor(self.epochs_done)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def after_epoch(self, train_loss: float) -> bool:
        before = self.lr
        self.epochs_done += 1
        self._apply()
        return self.lr != before

    def state_dict(self) -> dict:
        return {"epochs_done": self.epochs_done, "gamma": self.gamma, "every_epochs": self.every_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epochs_done = int(state["epochs_done"])
        self.gamma, self.every_epochs = float(state["gamma"]), int(state["every_epochs"])
        self._apply()


_STEP_NAME = re.compile(r"step-(?P<gamma>\d*\.?\d+)-per-(?P<n>\d+)-epochs?")


def step_schedule_name(gamma: float, every_epochs: int) -> str:
    """The schedule name of :class:`StepDecay` (``step_schedule_name(0.97, 2) == "step-0.97-per-2-epochs"``)."""
    return f"step-{gamma:g}-per-{int(every_epochs)}-epoch{'s' if every_epochs != 1 else ''}"


def budget_schedule(name: str) -> str:
    """The schedule a wall-clock budget (``--minutes``) uses for a recipe whose schedule is ``name``.

    A step decay (``step-G-per-N-epochs``) is defined per epoch and needs no end: it is kept, and
    the budget only fixes how many epochs it gets.  Every other schedule (the plateau rule needs an
    open-ended number of epochs; the others are the kit's older recipes) is replaced by
    ``warmup-cosine`` over the planned steps, as :mod:`ferlib.train.build` documents.
    """
    return name if _STEP_NAME.fullmatch(name) else "warmup-cosine"


def _plateau(recipe, optimizer, steps_per_epoch: int) -> Schedule:
    return Plateau(optimizer, patience=recipe.plateau_patience, threshold=recipe.plateau_threshold,
                   min_lr=recipe.min_lr, factor=getattr(recipe, "plateau_factor", None) or 0.1,
                   monitor=getattr(recipe, "plateau_on", None) or "train_loss")


def _warmup_cosine(recipe, optimizer, steps_per_epoch: int) -> Schedule:
    return WarmupCosine(optimizer, warmup_steps=steps_per_epoch)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "plateau": _plateau,
    "warmup-cosine": _warmup_cosine,
    "constant": lambda recipe, optimizer, steps_per_epoch: Schedule(optimizer),
}


def build_schedule(name: str, recipe, optimizer, steps_per_epoch: int) -> Schedule:
    if (m := _STEP_NAME.fullmatch(name)) is not None:
        return StepDecay(optimizer, gamma=float(m["gamma"]), every_epochs=int(m["n"]))
    if name not in SCHEDULES:
        raise KeyError(f"unknown schedule {name!r}; known: {', '.join(sorted(SCHEDULES))}")
    return SCHEDULES[name](recipe, optimizer, steps_per_epoch)


# -- two phases: frozen pretrained block, then fine-tuning (EmoNet §5) ---------------------------------

class PhasedOptimizer:
    """Several optimisers, one active at a time (``phase``): what the trainer steps, saves and restores.

    It offers the part of :class:`torch.optim.Optimizer` the kit uses -- ``param_groups``, ``zero_grad``,
    ``step``, ``state_dict`` / ``load_state_dict`` (every optimiser's state and the phase) and
    ``register_step_pre_hook`` -- and delegates each to the optimiser of the current phase.
    """

    def __init__(self, optimizers):
        self.optimizers = list(optimizers)
        if not self.optimizers:
            raise ValueError("PhasedOptimizer needs at least one optimiser")
        self.phase = 0

    @property
    def current(self) -> torch.optim.Optimizer:
        return self.optimizers[self.phase]

    @property
    def param_groups(self) -> list:
        return self.current.param_groups

    @property
    def defaults(self) -> dict:
        return self.current.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:  # a gradient left from the other phase must not leak into this one
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        return self.current.step(closure)

    def state_dict(self) -> dict:
        return {"phase": self.phase, "optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError(f"a checkpoint of {len(state['optimizers'])} optimiser phases for {len(self.optimizers)}")
        for opt, s in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        self.phase = int(state["phase"])

    def register_step_pre_hook(self, hook):
        return [o.register_step_pre_hook(hook) for o in self.optimizers]

    def __repr__(self) -> str:
        names = ", ".join(type(o).__name__ for o in self.optimizers)
        return f"PhasedOptimizer([{names}], phase={self.phase})"


class FreezeThenFineTune(Schedule):
    """EmoNet §5: ``frozen_epochs`` epochs with the pretrained block frozen (phase 0, the first optimiser,
    constant rate), then everything trained (phase 1, the second optimiser, under ``fine_tune``).

    ``model.set_pretrained_frozen(bool)`` freezes and unfreezes the block (:class:`ferlib.models.emonet.
    EmoNetFusion`).  The switch happens in :meth:`after_epoch` of epoch ``frozen_epochs`` (the trainer's epoch
    step, before that epoch's checkpoint), and :meth:`load_state_dict` re-applies the phase of the epochs
    done, so a resumed run is frozen or not exactly as the uninterrupted one was.  Under a wall-clock budget
    the frozen epochs are kept and the fine-tuning schedule gets the planned steps that follow them.
    """

    def __init__(self, optimizer: PhasedOptimizer, *, model, frozen_epochs: int, fine_tune: Schedule,
                 steps_per_epoch: int):
        super().__init__(optimizer)
        if int(frozen_epochs) != frozen_epochs or frozen_epochs < 0:
            raise ValueError(f"frozen_epochs must be a whole number >= 0, got {frozen_epochs!r}")
        if len(optimizer.optimizers) != 2:
            raise ValueError("FreezeThenFineTune needs a PhasedOptimizer of two optimisers (frozen, fine-tuning)")
        self.model, self.fine_tune = model, fine_tune
        self.frozen_epochs, self.steps_per_epoch = int(frozen_epochs), int(steps_per_epoch)
        self.epochs_done = 0
        self._apply()

    @property
    def phase(self) -> int:
        return 0 if self.epochs_done < self.frozen_epochs else 1

    @property
    def monitor(self) -> str:
        return getattr(self.fine_tune, "monitor", "train_loss") if self.phase == 1 else "train_loss"

    def _apply(self) -> None:
        self.optimizer.phase = self.phase
        self.model.set_pretrained_frozen(self.phase == 0)

    def after_step(self) -> bool:
        return self.fine_tune.after_step() if self.phase == 1 else False

    def after_epoch(self, loss: float) -> bool:
        changed = self.fine_tune.after_epoch(loss) if self.phase == 1 else False
        self.epochs_done += 1
        if self.epochs_done == self.frozen_epochs:  # the switch: unfreeze, second optimiser
            self._apply()
            return True
        return changed

    def set_total_steps(self, total_steps: int) -> None:
        frozen_steps = self.frozen_epochs * self.steps_per_epoch
        if int(total_steps) <= frozen_steps and not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(f"the planned {total_steps} steps end inside the {self.frozen_epochs} frozen epochs "
                          f"({frozen_steps} steps): the pretrained block will never be fine-tuned; give the run "
                          f"more time", RuntimeWarning, stacklevel=2)
        if hasattr(self.fine_tune, "set_total_steps"):
            self.fine_tune.set_total_steps(max(1, int(total_steps) - frozen_steps))

    def state_dict(self) -> dict:
        return {"epochs_done": self.epochs_done, "frozen_epochs": self.frozen_epochs,
                "fine_tune": self.fine_tune.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.epochs_done = int(state["epochs_done"])
        self.fine_tune.load_state_dict(state["fine_tune"])
        self._apply()
