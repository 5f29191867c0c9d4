"""What hangs on the trainer's loop without being part of it.

A callback gets ``on_fit_start(trainer)``, ``on_step_end(trainer)`` after every
optimiser step, ``on_epoch_end(trainer, record)`` after each epoch's evaluation and
checkpoints, and ``on_fit_end(trainer)``.  The ones here:

* :class:`MidEpochCheckpoint` -- ``latest.pt`` every N steps / S seconds inside an
  epoch, so a killed run resumes mid-epoch (bitwise: see ``ferlib.data.batches``).
* :class:`StopAfterSteps` -- a simulated kill for tests and demos.
* :class:`TimeBudget` -- plans the number of epochs from measured throughput so the
  run fits in M minutes (``--minutes``), and sets the schedule's length.
* :class:`ProgressBar` -- tqdm per epoch, with the time left under a budget.
"""
from __future__ import annotations

import math
import time


class Callback:
    def on_fit_start(self, trainer) -> None: ...

    def on_step_end(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_fit_end(self, trainer) -> None: ...


class TrainingInterrupted(RuntimeError):
    """Raised by :class:`StopAfterSteps` to simulate a killed run."""


class MidEpochCheckpoint(Callback):
    def __init__(self, every_steps: int | None = None, interval_s: float = 300.0):
        self.every_steps, self.interval_s = every_steps, interval_s
        self._last = time.perf_counter()

    def on_fit_start(self, trainer) -> None:
        self._last = time.perf_counter()

    def on_step_end(self, trainer) -> None:
        s = trainer.state
        due = (self.every_steps and s.steps % self.every_steps == 0) or \
              (time.perf_counter() - self._last > self.interval_s)
        if due and s.next_batch < len(trainer.train_source):
            trainer.save_resume()
            self._last = time.perf_counter()


class StopAfterSteps(Callback):
    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, trainer) -> None:
        if trainer.state.steps >= self.steps:
            raise TrainingInterrupted(f"stopped after {trainer.state.steps} steps (simulated kill)")


class TimeBudget(Callback):
    """Fit the run into ``minutes`` of wall clock, final evaluation included.

    Plan 1 (after ``calibration_steps`` timed steps of epoch 1, a few warm-up steps
    excluded): epochs = what fits at the measured step time, with evaluation estimated
    as a forward pass (1/3 of a training step per image).  Plan 2 (after epoch 1, which
    is the warm-up of the cosine schedule, so its length does not depend on the plan):
    the same from the measured epoch -- training, PublicTest evaluation, checkpoints --
    and a final evaluation of 12 passes (best + last five checkpoints, two splits).
    After later epochs the plan is only ever shortened, when the measured epochs run
    slower than planned (another job on the machine).  The plan is stored in
    ``trainer.state.plan`` and saved with every checkpoint, so a resumed run keeps it.
    """

    FINAL_EVAL_PASSES = 12

    def __init__(self, minutes: float, started: float | None = None, calibration_steps: int = 20,
                 skip_steps: int = 3):
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes!r}")
        self.budget_s = 60.0 * float(minutes)
        self.started = started if started is not None else time.time()
        self.calibration_steps, self.skip_steps = calibration_steps, skip_steps
        self._t = None
        self._epoch_start = None

    def elapsed(self) -> float:
        return time.time() - self.started

    def seconds_left(self) -> float:
        return self.budget_s - self.elapsed()

    def on_fit_start(self, trainer) -> None:
        plan = trainer.state.plan
        if plan.get("epochs"):
            trainer.epochs = plan["epochs"]
            self.budget_s = plan["budget_s"]
            self.started = time.time() - plan.get("elapsed_s", 0.0)  # the clock continues after a resume
        self._epoch_start = time.time()

    def _set(self, trainer, epochs: int, how: str, **measured) -> None:
        epochs = max(1, int(epochs))
        trainer.epochs = epochs
        trainer.schedule_total_steps(epochs * len(trainer.train_source))
        trainer.state.plan = {"budget_s": self.budget_s, "epochs": epochs, "planned_by": how,
                              "elapsed_s": self.elapsed(), **measured}

    def on_step_end(self, trainer) -> None:
        s = trainer.state
        if s.epoch != 0 or trainer.state.plan.get("planned_by", "calibration") != "calibration":
            trainer.state.plan["elapsed_s"] = self.elapsed()
            return
        if s.steps == self.skip_steps:
            trainer.sync()
            self._t = time.perf_counter()
        elif s.steps == self.skip_steps + self.calibration_steps and self._t is not None:
            trainer.sync()
            step_s = (time.perf_counter() - self._t) / self.calibration_steps
            n_batches = len(trainer.train_source)
            eval_s = trainer.val_source.num_samples / trainer.train_source.batch_size * step_s / 3
            epoch_s = n_batches * step_s + eval_s
            left = self.seconds_left() - (n_batches - s.next_batch) * step_s - eval_s \
                - self.FINAL_EVAL_PASSES * eval_s
            self._set(trainer, 1 + math.floor(left / epoch_s), "calibration", step_s=step_s,
                      images_per_s=trainer.train_source.batch_size / step_s)

    def on_epoch_end(self, trainer, record: dict) -> None:
        now = time.time()
        if record["epoch"] == 1 and trainer.state.plan.get("planned_by") != "epoch 1":
            epoch_s = now - self._epoch_start
            eval_s = record["eval_seconds"]
            left = self.seconds_left() - self.FINAL_EVAL_PASSES * eval_s
            self._set(trainer, 1 + math.floor(left / epoch_s), "epoch 1", epoch_s=epoch_s, eval_s=eval_s,
                      images_per_s=record["images_per_s"])
        elif record["epoch"] > 1:  # behind plan (a loaded machine)? shorten the run, never lengthen it
            epoch_s = now - self._epoch_start
            left = self.seconds_left() - self.FINAL_EVAL_PASSES * record["eval_seconds"]
            fits = record["epoch"] + max(0, math.floor(left / epoch_s))
            if fits < trainer.epochs:
                plan = {k: v for k, v in trainer.state.plan.items() if k not in ("budget_s", "epochs", "planned_by")}
                self._set(trainer, max(fits, record["epoch"]), f"re-planned after epoch {record['epoch']}", **plan)
        trainer.state.plan["elapsed_s"] = self.elapsed()
        self._epoch_start = now


class ProgressBar(Callback):
    def __init__(self, name: str, budget: TimeBudget | None = None):
        self.name, self.budget, self.bar = name, budget, None

    def _open(self, trainer, initial: int) -> None:
        from tqdm.auto import tqdm

        s = trainer.state
        self.bar = tqdm(total=len(trainer.train_source), initial=initial, leave=False, unit="batch",
                        desc=f"{self.name} epoch {s.epoch + 1}/{trainer.epochs}")

    def on_fit_start(self, trainer) -> None:
        self._open(trainer, trainer.state.next_batch)

    def on_step_end(self, trainer) -> None:
        if self.bar is None:
            self._open(trainer, trainer.state.next_batch - 1)
        self.bar.update(1)
        if self.budget is not None and trainer.state.steps % 10 == 0:
            left = max(0.0, self.budget.seconds_left())
            self.bar.set_postfix_str(f"{left / 60:.1f} min left of {self.budget.budget_s / 60:.0f}", refresh=False)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        lr = record["lr"]
        print(f"[{self.name}] epoch {record['epoch']}/{trainer.epochs}  train loss {record['train_loss']:.4f}  "
              f"PublicTest acc {record['val_accuracy']:.4f}  lr {lr:.2g}  {record['train_seconds']:.1f} s", flush=True)

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
