"""Training protocols driven by the validation loss: DNNRL §4's learning-rate cuts, reloads and stop.

DNNRL §4: "The initial learning rate was set to 0.01, while the minimum learning rate
was set to 0.0001 ... The validation loss was assessed after each round of training;
if the validation loss increased by more than 10%, the learning rate was reduced by
one-tenth and the previous network with the best validation loss was reloaded. The
termination criterion for the training model was judged by the new lowest value for
the validation loss in 20 iterations."

ferlib's reading (:class:`ValidationLossProtocol`), after every epoch, on the
validator's loss of PublicTest (``record["val_loss"]``):

* **"increased by more than 10 %"** -- relative to the *best* (lowest) validation loss
  so far: ``loss > 1.1 × best``.  (Relative to the previous epoch, a slow drift upwards
  of 9 % per epoch would never trigger; the best is also what gets reloaded.)
* **"reduced by one-tenth"** -- multiplied by 0.1, never below the minimum 1e-4: from
  0.01, two cuts reach the stated minimum, which makes the minimum meaningful; × 0.9
  ("reduced *by* a tenth") would need 44 cuts to get there.
* **"the previous network with the best validation loss was reloaded"** -- the model
  weights, the optimiser state (SGD momentum buffers) and the criterion state of the
  epoch with the lowest validation loss; the learning rate is the new, lower one.
  They are kept in ``best_loss.pt`` in the run folder, written whenever the
  validation loss reaches a new low, so a killed run resumes exactly.  The rule
  fires (and reloads) at the minimum learning rate too; the rate then stays at 1e-4.
* **"the new lowest value for the validation loss in 20 iterations"** -- an
  iteration is an epoch ("round of training"): the run stops after 20 epochs in a
  row without a new lowest validation loss (``patience = 20``).  Epochs after a
  reload count on; a reload does not reset the count.
* The optimiser is not named in the paper; ferlib's DNNRL recipes use SGD with
  momentum 0.9 (:mod:`ferlib.train.recipes.dnnrl`).

The protocol is a callback (:mod:`ferlib.train.callbacks`): the trainer's loop does
not change.  It keeps its counters in ``trainer.state.callback_state["dnnrl-validation-loss"]``
(saved with every resume checkpoint), ends the run through
``trainer.stop_requested``, tells the criterion of every learning-rate change
(``criterion.on_lr_change``) and notes each event in the epoch's history record
(``record["protocol"]``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .callbacks import Callback
from .checkpoint import load_checkpoint_dict, save_atomic, state_dict_cpu

__all__ = ["ValidationLossProtocol", "PROTOCOLS", "build_protocol", "BEST_LOSS_FILE"]

BEST_LOSS_FILE = "best_loss.pt"


class ValidationLossProtocol(Callback):
    """DNNRL §4: cut the lr ×``factor`` and reload the best-loss network when the validation
    loss rises by more than ``increase`` over its best; stop after ``patience`` epochs without a new best.

    Args:
        min_lr: the learning rate never goes below this (DNNRL: 1e-4).
        factor: the cut (0.1: "reduced by one-tenth", see the module docstring).
        increase: relative rise over the best loss that triggers a cut (0.1: "more than 10%").
        patience: epochs without a new lowest validation loss before stopping (20).
        name: key of the protocol's state in ``trainer.state.callback_state``.
    """

    def __init__(self, *, min_lr: float = 1e-4, factor: float = 0.1, increase: float = 0.1, patience: int = 20,
                 name: str = "dnnrl-validation-loss"):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1) (a cut of the learning rate), got {factor}")
        if not increase >= 0.0:
            raise ValueError(f"increase must be >= 0 (a relative rise, 0.1 = 10 %), got {increase}")
        if int(patience) != patience or patience < 1:
            raise ValueError(f"patience must be a positive integer (epochs), got {patience!r}")
        if not min_lr >= 0.0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.min_lr, self.factor, self.increase, self.patience, self.name = (
            float(min_lr), float(factor), float(increase), int(patience), name)

    # -- state kept in the trainer's resume checkpoint ------------------------------------------------
    def state(self, trainer) -> dict:
        return trainer.state.callback_state.setdefault(
            self.name, {"best_loss": None, "best_epoch": None, "epochs_without_new_best": 0, "cuts": 0,
                        "reloads": [], "stopped_after_epoch": None})

    @staticmethod
    def best_path(trainer) -> Path:
        return Path(trainer.run_dir) / BEST_LOSS_FILE

    def describe(self) -> dict:
        return {"name": self.name, "min_lr": self.min_lr, "factor": self.factor, "increase": self.increase,
                "patience": self.patience}

    # -- the rule ---------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        st = self.state(trainer)
        if st["stopped_after_epoch"] is not None:  # a resumed run that had already met the stop rule
            trainer.stop_requested = True

    def on_epoch_end(self, trainer, record: dict) -> None:
        loss, epoch, st = record.get("val_loss"), record["epoch"], self.state(trainer)
        if loss is None:
            raise ValueError("the DNNRL validation-loss protocol needs a validation loss each epoch, but the "
                             "validator returned none; use a validator that reports one (softmax cross-entropy, "
                             "or a k-NN validator given the criterion)")
        events = []
        if st["best_loss"] is None or loss < st["best_loss"]:
            st.update(best_loss=float(loss), best_epoch=epoch, epochs_without_new_best=0)
            self._save_best(trainer, epoch, loss)
        else:
            st["epochs_without_new_best"] += 1
            if loss > (1.0 + self.increase) * st["best_loss"]:
                old, new = self._cut_and_reload(trainer)
                st["cuts"] += 1
                st["reloads"].append({"after_epoch": epoch, "reloaded_epoch": st["best_epoch"], "lr": new})
                events.append(f"loss {loss:.4g} > {1 + self.increase:g} x best {st['best_loss']:.4g}: "
                              f"lr {old:.3g} -> {new:.3g}, reloaded epoch {st['best_epoch']}")
        if st["epochs_without_new_best"] >= self.patience:
            st["stopped_after_epoch"] = epoch
            trainer.stop_requested = True
            events.append(f"stop: no new lowest validation loss in {self.patience} epochs")
        if events:
            record["protocol"] = "; ".join(events)

    def _save_best(self, trainer, epoch: int, loss: float) -> None:
        save_atomic({"format": "ferlib-checkpoint-v1", "kind": "protocol-best", "epoch": epoch, "val_loss": float(loss),
                     "model": state_dict_cpu(trainer.model), "optimizer": trainer.optimizer.state_dict(),
                     "criterion": state_dict_cpu(trainer.criterion)}, self.best_path(trainer))

    def _cut_and_reload(self, trainer) -> tuple[float, float]:
        opt = trainer.optimizer
        lrs = [max(g["lr"] * self.factor, self.min_lr) for g in opt.param_groups]
        old = opt.param_groups[0]["lr"]
        best = load_checkpoint_dict(self.best_path(trainer))
        trainer.model.load_state_dict(best["model"])
        opt.load_state_dict(best["optimizer"])  # momentum of the best epoch (its lr is replaced just below)
        trainer.criterion.load_state_dict(best["criterion"])
        for g, lr in zip(opt.param_groups, lrs):
            g["lr"] = lr
        trainer.criterion.on_lr_change(opt)
        return old, lrs[0]


def _dnnrl(recipe) -> ValidationLossProtocol:
    return ValidationLossProtocol(min_lr=recipe.min_lr)


PROTOCOLS: dict[str, Callable[..., Callback]] = {"dnnrl-validation-loss": _dnnrl}


def build_protocol(name: str, recipe) -> Callback:
    if name not in PROTOCOLS:
        raise KeyError(f"unknown training protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name](recipe)
