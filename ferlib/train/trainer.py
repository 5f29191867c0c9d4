"""The training loop: built parts in, checkpoints and an epoch history out.

:class:`Trainer` receives what :func:`ferlib.train.build.build_run` made from a recipe
(model, criterion, optimiser, schedule, Training and PublicTest batch sources, validator,
run folder, callbacks) and only loops: :meth:`~Trainer.train_epoch`'s step has five
commented phases, :meth:`~Trainer.end_epoch` reads as its named steps (validate on
PublicTest, record, select on ``select_on`` -- PublicTest accuracy, highest wins, or the
validator's loss, lowest wins; first best on ties; patience in epochs -- save
``epoch_NNN.pt``, the last five kept for the checkpoint ensemble, and ``best.pt``, then
callbacks and ``latest.pt``); everything else is a callback (:mod:`ferlib.train.callbacks`).
A callback ends the run by setting ``trainer.stop_requested``: after an epoch (the DNNRL
§4 protocol) or at a step, the epoch left unfinished (the wall-clock budget).  The test
split is never seen here.  The criterion receives ``(logits, features, labels)``; it may
own parameters, update state after each step (``after_step``: the center rule) and follow
the learning rate (``on_lr_change``: the center term's own rate).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import UsageError
from .callbacks import StopTraining, TrainingInterrupted  # noqa: F401  (re-exported: tests and demos catch them)
from .checkpoint import load_checkpoint_dict, prune_epoch_checkpoints, save_atomic, state_dict_cpu
from .distributed import current_comm
from .precision import autocast, autocast_dtype
from .validation import SoftmaxValidator

KEEP_LAST = 5
SELECT_ON = ("accuracy", "loss")


@dataclass
class RunState:
    """What a resume restores besides the modules: position, running sums, history, selection, plan."""

    epoch: int = 0
    next_batch: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    term_sums: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    history: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = -1.0
    best_val_loss: float | None = None
    epochs_without_improvement: int = 0
    steps: int = 0
    plan: dict = field(default_factory=dict)
    callback_state: dict = field(default_factory=dict)  # what callbacks keep across a resume, by callback name


class RunningSums:
    """Loss sums of the epoch in progress, kept on the device (no host sync per step).

    ``loss_sum`` / ``term_sums``: the sums restored from a checkpoint (already over
    every process); the device sums count this process's steps since then, and
    :meth:`as_floats` adds them up -- summed over the processes first by the
    trainer's ``comm`` (one all-reduce under torchrun).
    """

    def __init__(self, device, loss_sum: float = 0.0, term_sums: dict | None = None):
        self.device = device
        self.base_loss, self.base_terms = float(loss_sum), dict(term_sums or {})
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.terms = {k: torch.zeros((), device=device, dtype=torch.float64) for k in self.base_terms}

    def add(self, loss: torch.Tensor, terms: dict, n: int) -> None:
        self.loss += loss.detach().double() * n
        for name, value in terms.items():
            value = torch.as_tensor(value, device=self.device).double() * n
            self.terms[name] = self.terms[name] + value if name in self.terms else value

    def as_floats(self, comm) -> tuple[float, dict]:
        names = sorted(self.terms)
        loss, *terms = comm.sum([self.loss] + [self.terms[k] for k in names])
        return (self.base_loss + float(loss),
                {k: self.base_terms.get(k, 0.0) + float(v) for k, v in zip(names, terms)})


class Trainer:
    """Train built parts; see the module docstring.

    ``describe_model()`` returns the model-only checkpoint fields besides the weights
    (architecture, normalisation, evaluation transform, class names); ``identity`` is
    what a resumed run must match (recipe, profile, seed, data, budget).  ``validator``
    (default :class:`~ferlib.train.validation.SoftmaxValidator`) measures PublicTest;
    ``select_on`` is ``"accuracy"`` or ``"loss"`` (the validator's loss).
    ``train_forward`` replaces ``model.forward_with_features`` in the training step
    (:class:`~ferlib.train.precision.CompiledTrainingForward` for ``--compile``).
    ``comm`` (default :func:`~ferlib.train.distributed.current_comm`: the joined
    torchrun group's, else one process's) is what differs between processes: only
    ``comm.is_writer`` (rank 0) evaluates PublicTest -- the others get its numbers --
    and writes files, and the epoch's loss sums are ``comm.sum``'s (a collective: every
    process calls :meth:`sync` at the same steps, and :meth:`save_resume` too, whether
    or not it writes).
    """

    def __init__(self, *, model, criterion, optimizer, schedule, train_source, val_source, run_dir,
                 epochs: int, precision: str = "fp32", identity: dict | None = None,
                 describe_model: Callable[[], dict] = dict, callbacks=(), early_stopping_patience: int | None = None,
                 validator=None, select_on: str = "accuracy", name: str = "run", log: bool = True,
                 comm=None, train_forward: Callable | None = None):
        if select_on not in SELECT_ON:
            raise ValueError(f"select_on must be one of {SELECT_ON}, got {select_on!r}")
        self.model, self.criterion, self.optimizer, self.schedule = model, criterion, optimizer, schedule
        self.train_source, self.val_source = train_source, val_source
        self.validator = validator if validator is not None else SoftmaxValidator()
        self.select_on = select_on
        self.stop_requested = False  # set by a callback to end the run (checked after each step and epoch)
        self.run_dir = Path(run_dir)
        self.epochs, self.precision, self.name, self.log = int(epochs), precision, name, log
        self.identity = identity or {}
        self.describe_model = describe_model
        self.callbacks = list(callbacks)
        self.early_stopping_patience = early_stopping_patience
        self.comm = comm if comm is not None else current_comm()
        self.train_forward = train_forward  # None: model.forward_with_features (else e.g. a compiled one)
        self.device = train_source.device
        self.state = RunState()
        self.sums = RunningSums(self.device)
        self._t0 = time.perf_counter()

    # -- the loop -------------------------------------------------------------------------
    def autocast(self):
        return autocast(self.precision, self.device)

    def train_epoch(self) -> None:
        s, model, crit, opt = self.state, self.model, self.criterion, self.optimizer
        forward = self.train_forward or model.forward_with_features
        model.train()
        for k, (x, y, *side) in enumerate(self.train_source.iter_from(s.epoch, s.next_batch), start=s.next_batch):
            # forward (bf16 autocast where the precision says so); side inputs (EmoNet's BOVW) by name
            with self.autocast():
                logits, feats = forward(x, **(side[0] if side else {}))
            # loss (criteria cast to float32 themselves; logits is None for an embedding-only model)
            loss = crit(logits, feats.float(), y)
            # backward and step
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            # criterion update (the center rule) and the learning-rate schedule
            crit.after_step(feats.detach().float(), y)
            if self.schedule.after_step():
                crit.on_lr_change(opt)
            # bookkeeping: sums on the device, position for resume, callbacks (which may stop here)
            self.sums.add(loss, crit.last_terms, y.shape[0])
            s.seen, s.steps, s.next_batch = s.seen + y.shape[0], s.steps + 1, k + 1
            for cb in self.callbacks:
                cb.on_step_end(self)
            if self.stop_requested:
                break
        self.sync()

    def fit(self, *, resume: bool = True) -> RunState:
        """Train to ``epochs`` (continuing a saved run when ``resume``); returns the state."""
        if resume and not self.try_resume() and self.log:
            print(f"[ferlib] {self.name}: no checkpoint in {self.run_dir} to resume from; starting at epoch 1",
                  flush=True)
        self.criterion.on_lr_change(self.optimizer)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        s = self.state
        try:
            while s.epoch < self.epochs and not self._patience_exhausted() and not self.stop_requested:
                self._t0 = time.perf_counter()
                self.train_epoch()
                if self.stop_requested and s.next_batch < len(self.train_source):
                    break  # stopped at a step: the epoch stays unfinished (latest.pt holds its position)
                self.end_epoch()
        finally:  # callbacks release what they hold (progress bar, signal handler) however the run ends
            for cb in self.callbacks:
                cb.on_fit_end(self)
        return s

    def _patience_exhausted(self) -> bool:
        p = self.early_stopping_patience
        return p is not None and self.state.epochs_without_improvement >= p

    # -- between epochs -------------------------------------------------------------------
    def sync(self) -> None:
        """Fold the device-side sums and the elapsed training time into the state."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.state.train_seconds += now - self._t0
        self._t0 = now
        self.state.loss_sum, self.state.term_sums = self.sums.as_floats(self.comm)

    def schedule_total_steps(self, total: int) -> None:
        if hasattr(self.schedule, "set_total_steps"):
            self.schedule.set_total_steps(total)
            self.criterion.on_lr_change(self.optimizer)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return autocast_dtype(self.precision)

    def end_epoch(self) -> dict:
        """After an epoch's last step, in this order (each a method below); returns the epoch's record."""
        measured, eval_s = self._validate()  # PublicTest
        record = self._record(measured, eval_s)  # the epoch's losses, lr, throughput -> the history
        monitored = record[getattr(self.schedule, "monitor", "train_loss")]  # the training or validation loss
        if self.schedule.after_epoch(record["train_loss"] if monitored is None else monitored):  # e.g. the plateau rule
            self.criterion.on_lr_change(self.optimizer)
        improved = self._select(record)  # best so far on ``select_on``? (patience counts the others)
        self._save_epoch(record, improved)  # epoch_NNN.pt (the last KEEP_LAST kept), best.pt
        self._next_epoch()  # position and running sums of the next epoch
        for cb in self.callbacks:  # budget plan, protocol, progress, Ctrl-C
            cb.on_epoch_end(self, record)
        self._t0 = time.perf_counter()  # evaluation and saving are not training time
        self.save_resume()  # latest.pt: the next run resumes after this epoch
        return record

    def _validate(self) -> tuple[dict, float]:
        """PublicTest's measures (rank 0 measures, every process gets its numbers) and the seconds it took."""
        t = time.perf_counter()
        measured = self.comm.broadcast(
            self.validator(self.model, self.val_source, self.autocast_dtype) if self.comm.is_writer else None)
        return measured, time.perf_counter() - t

    def _record(self, measured: dict, eval_s: float) -> dict:
        s, src = self.state, self.train_source
        n = min(src.num_samples, len(src) * src.batch_size)  # images per epoch (drop_last)
        seconds = s.train_seconds - sum(h["train_seconds"] for h in s.history)
        record = {"epoch": s.epoch + 1, "train_loss": s.loss_sum / n,
                  "train_terms": {k: v / n for k, v in s.term_sums.items()},
                  "lr": self.optimizer.param_groups[0]["lr"], "val_accuracy": measured["accuracy"],
                  "val_loss": measured["loss"], "train_seconds": seconds,
                  "images_per_s": n / seconds if seconds > 0 else None, "eval_seconds": eval_s}
        s.history.append(record)
        return record

    def _select(self, record: dict) -> bool:
        s, acc, loss = self.state, record["val_accuracy"], record["val_loss"]
        if self.select_on == "loss" and loss is None:
            raise ValueError("select_on='loss' needs a validation loss, but the validator returned none "
                             "(soft labels, or a k-NN validator without a criterion); select on 'accuracy'")
        improved = (acc > s.best_val_accuracy if self.select_on == "accuracy"
                    else s.best_val_loss is None or loss < s.best_val_loss)  # the first best on ties
        if improved:
            s.best_val_accuracy, s.best_val_loss, s.best_epoch = acc, loss, record["epoch"]
            s.epochs_without_improvement = 0
        else:
            s.epochs_without_improvement += 1
        return improved

    def _save_epoch(self, record: dict, improved: bool) -> None:
        if not self.comm.is_writer:
            return
        epoch = record["epoch"]
        payload = self.model_payload(epoch=epoch, val_accuracy=record["val_accuracy"], val_loss=record["val_loss"])
        save_atomic(payload, self.run_dir / f"epoch_{epoch:03d}.pt")
        prune_epoch_checkpoints(self.run_dir, KEEP_LAST)
        if improved:
            save_atomic(payload, self.run_dir / "best.pt")

    def _next_epoch(self) -> None:
        s = self.state
        s.epoch, s.next_batch, s.loss_sum, s.term_sums = s.epoch + 1, 0, 0.0, {}
        self.sums = RunningSums(self.device)

    # -- checkpoints ------------------------------------------------------------------------
    def model_payload(self, **extra) -> dict:
        return {**self.describe_model(), "model": state_dict_cpu(self.model), "precision": self.precision, **extra}

    def save_resume(self) -> None:
        self.sync()
        if not self.comm.is_writer:
            return
        s = self.state
        payload = self.model_payload(
            identity=self.identity, optimizer=self.optimizer.state_dict(), schedule=self.schedule.state_dict(),
            criterion=state_dict_cpu(self.criterion), state={**s.__dict__, "term_sums": dict(s.term_sums)},
            rng=_global_rng_state())  # dropout draws from the global generator: a resumed run continues its stream
        payload["kind"] = "resume"
        save_atomic(payload, self.run_dir / "latest.pt")

    def try_resume(self) -> bool:
        path = self.run_dir / "latest.pt"
        if not path.exists():
            return False
        ckpt = load_checkpoint_dict(path)
        if ckpt.get("identity") != self.identity:
            differ = identity_differences(ckpt.get("identity") or {}, self.identity)
            raise UsageError(f"{path} belongs to a different run ({', '.join(differ)} differ from this one's); "
                             f"its run folder {self.run_dir} is not resumed",
                             "start over with --fresh (the old folder is kept, renamed), or train in another "
                             "folder with --run-dir DIR")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.criterion.load_state_dict(ckpt["criterion"])
        if ckpt.get("rng") is not None:  # checkpoints written before the field resume without it
            _set_global_rng_state(ckpt["rng"])
        self.state = RunState(**ckpt["state"])
        self.sums = RunningSums(self.device, self.state.loss_sum, self.state.term_sums)
        if self.state.plan.get("epochs"):
            self.epochs = self.state.plan["epochs"]
        if self.log:
            s = self.state
            where = (f"after epoch {s.epoch} (epoch {s.epoch + 1} of {self.epochs}, step {s.next_batch})"
                     if s.epoch < self.epochs else f"after its last epoch ({s.epoch} of {self.epochs})")
            print(f"[ferlib] resuming {self.name} from {path}: {where}", flush=True)
        return True


def _global_rng_state() -> dict:
    """The global generators' states (CPU, and every CUDA device when CUDA is initialised)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def identity_differences(saved: dict, current: dict) -> list[str]:
    """The fields in which two run identities differ, a recipe's one by one (``recipe.lr``, ``seed``)."""
    out = []
    for k in sorted(set(saved) | set(current)):
        a, b = saved.get(k), current.get(k)
        if k == "recipe" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"recipe.{f}" for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
        elif a != b:
            out.append(k)
    return out


def train_images_per_s(state: RunState) -> float | None:
    return state.seen / state.train_seconds if state.train_seconds > 0 else None
