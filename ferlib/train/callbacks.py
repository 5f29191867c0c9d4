"""What hangs on the trainer's loop without being part of it.

A callback gets ``on_fit_start(trainer)``, ``on_step_end(trainer)`` after every
optimiser step, ``on_epoch_end(trainer, record)`` after each epoch's evaluation and
checkpoints, and ``on_fit_end(trainer)``.  The ones here:

* :class:`MidEpochCheckpoint` -- ``latest.pt`` every N steps / S seconds inside an
  epoch, so a killed run resumes mid-epoch (bitwise: see ``ferlib.data.batches``).
* :class:`SaveOnInterrupt` -- Ctrl-C ends the run at the next step with a resumable
  checkpoint and one line (:class:`TrainingInterrupted`).
* :class:`StopAfterSteps` -- a planned stop (:class:`StopTraining`) for tests and measurements.
* :class:`LongRunWarning` -- an epoch budget that will take hours says so early.
* :class:`TimeBudget` -- plans the epochs from measured throughput so the run fits in M
  minutes (``--minutes``), sets the schedule's length, and stops at a step when time runs out.
* :class:`ProgressBar` -- tqdm per epoch, with the time left under a budget.

A callback ends a run by setting ``trainer.stop_requested = True`` (checked after each
step and before each epoch; a run stopped inside an epoch leaves it unfinished) and keeps
what it must carry across a resume in ``trainer.state.callback_state[name]``; the DNNRL §4
protocol (:mod:`ferlib.train.protocols`) does both.  As in fastai's ``Learner``, a run is
cut short by its own exception: :class:`StopTraining` for a planned stop, never the
interrupt's (:class:`TrainingInterrupted` is Ctrl-C).
"""
from __future__ import annotations

import math
import statistics
import time

from ..errors import UsageError


class Callback:
    """Hooks of the trainer's loop.  What depends on the number of processes is asked of
    ``trainer.comm`` (:mod:`ferlib.train.distributed`): a decision taken from this
    process's clock or signals is ``trainer.comm.any(flag)`` (a vote, called at every
    step whatever the flag, so all ranks save or stop at the same step), printing and
    writing are for ``trainer.comm.is_writer``, and a plan is ``trainer.comm.broadcast``'s.
    """

    def on_fit_start(self, trainer) -> None: ...

    def on_step_end(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_fit_end(self, trainer) -> None: ...


class TrainingInterrupted(RuntimeError):
    """Ctrl-C (:class:`SaveOnInterrupt`): a checkpoint is saved, and the message says how to resume.

    In Jupyter it renders as its message alone (``_render_traceback_``): the run was
    stopped on purpose, and the message says how to go on.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class StopTraining(TrainingInterrupted):
    """A planned stop (fastai's ``CancelFitException``): :class:`StopAfterSteps`, nothing saved.

    Like a kill: the fit ends at once, ``latest.pt`` is whatever was saved before, and a
    run started by the CLI writes no results (``--stop-after-steps`` exits with status 1).
    A measurement that stops on purpose catches ``StopTraining`` and lets Ctrl-C
    (:class:`TrainingInterrupted`, ``KeyboardInterrupt``) through.  It subclasses
    TrainingInterrupted only so that older callers catching that still stop; catch
    ``StopTraining`` first.
    """


class SaveOnInterrupt(Callback):
    """Ctrl-C (SIGINT) during training: finish the step, save ``latest.pt``, stop with one line.

    The first Ctrl-C only sets a flag (a step cut in half would leave the model and the
    saved position out of step); the next step boundary saves a resumable checkpoint
    and raises :class:`TrainingInterrupted` with "interrupted at epoch E of N, step S of
    B; run the same command to resume".  A second Ctrl-C interrupts at once, as usual.
    Installed only in the main thread (Python's rule for signal handlers); the previous
    handler is restored when the run ends, however it ends.
    """

    def __init__(self):
        self.requested = False
        self.repeat_interrupts = True  # a second Ctrl-C interrupts at once (not under torchrun, which forwards the first)
        self._previous = None

    def on_fit_start(self, trainer) -> None:
        import signal
        import threading

        self.requested = False
        self.repeat_interrupts = trainer.comm.world_size == 1
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if self.requested and self.repeat_interrupts:
            raise KeyboardInterrupt
        self.requested = True

    def _stop(self, trainer, at_epoch_end: bool) -> None:
        trainer.save_resume()
        self.on_fit_end(trainer)
        s = trainer.state
        where = (f"after epoch {s.epoch} of {trainer.epochs}" if at_epoch_end else
                 f"at epoch {s.epoch + 1} of {trainer.epochs}, step {s.next_batch} of {len(trainer.train_source)}")
        raise TrainingInterrupted(f"interrupted {where}; checkpoint saved in {trainer.run_dir}; "
                                  f"run the same command to resume")

    def on_step_end(self, trainer) -> None:
        if trainer.comm.any(self.requested):
            self._stop(trainer, at_epoch_end=False)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if trainer.comm.any(self.requested):
            self._stop(trainer, at_epoch_end=True)

    def on_fit_end(self, trainer) -> None:
        if self._previous is not None:
            import signal

            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


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
        if trainer.comm.any(bool(due)) and s.next_batch < len(trainer.train_source):
            trainer.save_resume()
            self._last = time.perf_counter()


class StopAfterSteps(Callback):
    """Raise :class:`StopTraining` once the run has taken ``steps`` optimiser steps (counted over resumes)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, trainer) -> None:
        if trainer.state.steps >= self.steps:
            raise StopTraining(f"stopped after {trainer.state.steps} steps (a planned stop, as a kill would)")


class LongRunWarning(Callback):
    """Say early, from measured throughput, how long an epoch-budget run will take, and what to do instead.

    After ``skip_steps`` warm-up steps and ``timed_steps`` timed ones, the time of the
    whole run is estimated (training steps, plus evaluation as a third of a training
    pass over PublicTest per epoch).  Above ``warn_hours`` a warning names the estimate
    and points at the wall-clock budget (``--minutes``) and at Ctrl-C, which stops with
    a checkpoint.  The paper's budgets on a laptop CPU take days; that should be a
    choice, not a surprise.
    """

    def __init__(self, warn_hours: float = 2.0, skip_steps: int = 3, timed_steps: int = 10, clock=time.perf_counter):
        self.warn_hours, self.skip_steps, self.timed_steps = warn_hours, skip_steps, timed_steps
        self.clock = clock
        self._t = None
        self.estimate_hours = None

    def on_step_end(self, trainer) -> None:
        s = trainer.state
        if self.estimate_hours is not None:
            return
        if s.steps == self.skip_steps:
            self._t = self.clock()
        elif self._t is not None and s.steps == self.skip_steps + self.timed_steps:
            step_s = (self.clock() - self._t) / self.timed_steps
            steps_left = (trainer.epochs - s.epoch) * len(trainer.train_source) - s.next_batch
            eval_s = step_s / 3 * len(trainer.val_source) * (trainer.epochs - s.epoch)
            self.estimate_hours = (steps_left * step_s + eval_s) / 3600
            if self.estimate_hours > self.warn_hours and trainer.comm.is_writer:  # rank 0 speaks for all
                print(f"[ferlib] warning: at the measured {step_s:.2f} s per step, {trainer.epochs} epochs of "
                      f"{trainer.name} take about {self.estimate_hours:.1f} hours on {trainer.device}. "
                      f"For a real model in an hour on a CPU use --minutes 60; Ctrl-C stops with a checkpoint.",
                      flush=True)


class TimeBudget(Callback):
    """Fit the run into ``minutes`` of wall clock, final evaluation included.

    The plan (``trainer.state.plan``, saved with every checkpoint: a resumed run keeps it) is
    made after ``calibration_steps`` timed steps of epoch 1 (evaluation estimated as a third of
    a training step per image; a budget that cannot fit one epoch and the final evaluation is
    refused there, a UsageError naming the epoch estimate and the smallest ``--minutes`` that
    fits), after epoch 1 (the cosine's warm-up), after epoch 2 (the first without one-off
    costs), then on the median of the last ``RECENT_EPOCHS`` epochs: shorter at once, longer
    once a full window says so.  The final evaluation is ``final_eval_passes`` PublicTest-sized
    passes (:func:`ferlib.train.build.final_eval_passes`).  Why the median, and not the last
    epoch or a shorten-only rule: the runs in ``results/README.md``.  A part-way epoch plans nothing.

    Between plans it stops **at a step** once the time left, less one step, no longer covers
    the final evaluation (``trainer.comm.any``: every process stops there): a machine that
    stalls mid-epoch does not overrun.  It
    records ``plan["stopped"]``, saves ``latest.pt`` there and ends the fit, the epoch
    unfinished; the final evaluation takes the best epoch so far (the same command run again
    goes straight to it).  Before any epoch has finished, a UsageError says so.
    """

    FINAL_EVAL_PASSES = 12
    RECENT_EPOCHS = 3

    def __init__(self, minutes: float, started: float | None = None, calibration_steps: int = 20,
                 skip_steps: int = 3, final_eval_passes: int = FINAL_EVAL_PASSES, clock=time.time):
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes!r}")
        self.clock = clock  # wall-clock seconds (``started`` is on the same clock)
        self.final_eval_passes = int(final_eval_passes)
        self.budget_s = 60.0 * float(minutes)
        self.started = started if started is not None else clock()
        self.calibration_steps, self.skip_steps = calibration_steps, skip_steps
        self._t = None
        self._epoch_start = None
        self._resumed_mid_epoch = False
        self._epoch_seconds: list[float] = []  # durations of the whole epochs measured in this process

    def elapsed(self) -> float:
        return self.clock() - self.started

    def seconds_left(self) -> float:
        return self.budget_s - self.elapsed()

    def final_eval_seconds(self, plan: dict) -> float:
        return self.final_eval_passes * plan["eval_s"]

    def on_fit_start(self, trainer) -> None:
        plan = trainer.state.plan
        if plan.get("epochs"):
            trainer.epochs = plan["epochs"]
            self.budget_s = plan["budget_s"]
            self.started = self.clock() - plan.get("elapsed_s", 0.0)  # the clock continues after a resume
        if plan.get("stopped"):  # the budget ran out before: straight to the final evaluation
            trainer.stop_requested = True
        self._resumed_mid_epoch = trainer.state.next_batch > 0
        self._epoch_start = self.clock()

    def _set(self, trainer, epochs: int, how: str, **measured) -> None:
        epochs = max(1, int(epochs))
        trainer.epochs = epochs
        trainer.schedule_total_steps(epochs * len(trainer.train_source))
        trainer.state.plan = {"budget_s": self.budget_s, "epochs": epochs, "planned_by": how,
                              "elapsed_s": self.elapsed(), **measured}

    def _share(self, trainer) -> None:
        """Rank 0's plan on every process (``trainer.comm.broadcast``; the plan itself in one process)."""
        plan = trainer.comm.broadcast(dict(trainer.state.plan))
        trainer.state.plan = plan
        if plan.get("epochs") and plan["epochs"] != trainer.epochs:
            trainer.epochs = plan["epochs"]
            trainer.schedule_total_steps(plan["epochs"] * len(trainer.train_source))

    def on_step_end(self, trainer) -> None:
        self._plan_from_steps(trainer)
        s = trainer.state
        if s.epoch == 0 and s.steps == self.skip_steps + self.calibration_steps:  # where every process may plan
            self._share(trainer)
            self._refuse_if_too_short(trainer)
        elif trainer.comm.any(self._out_of_time(trainer)):
            self._stop_here(trainer)

    def _plan_from_steps(self, trainer) -> None:
        s = trainer.state
        if s.epoch != 0 or trainer.state.plan.get("planned_by", "calibration") != "calibration":
            trainer.state.plan["elapsed_s"] = self.elapsed()
            return
        if s.steps == self.skip_steps:
            trainer.sync()
            self._t = self.clock()
        elif s.steps == self.skip_steps + self.calibration_steps and self._t is not None:
            trainer.sync()
            step_s = (self.clock() - self._t) / self.calibration_steps
            n_batches = len(trainer.train_source)
            eval_s = trainer.val_source.num_samples / trainer.train_source.batch_size * step_s / 3
            epoch_s = n_batches * step_s + eval_s
            first = (n_batches - s.next_batch) * step_s + eval_s + self.final_eval_passes * eval_s  # epoch 1's rest
            measured = {"step_s": step_s, "eval_s": eval_s, "epoch_s": epoch_s,
                        "images_per_s": trainer.train_source.batch_size / step_s}
            if first > self.seconds_left():  # not even one epoch and the final evaluation
                measured["min_minutes"] = math.ceil((self.elapsed() + first) / 60)
            self._set(trainer, 1 + math.floor((self.seconds_left() - first) / epoch_s), "calibration", **measured)

    def _refuse_if_too_short(self, trainer) -> None:
        p = trainer.state.plan
        if p.get("min_minutes"):
            raise UsageError(
                f"a {self.budget_s / 60:g}-minute budget cannot fit one epoch of {trainer.name} and its final "
                f"evaluation on {trainer.device}: an epoch takes about {p['epoch_s']:.0f} s here "
                f"({len(trainer.train_source)} steps of {p['step_s']:.2f} s, and PublicTest), the final evaluation "
                f"about {self.final_eval_seconds(p):.0f} s, and {p['elapsed_s']:.0f} s have gone already",
                f"give --minutes {p['min_minutes']} or more")

    def _out_of_time(self, trainer) -> bool:
        p = trainer.state.plan
        return "eval_s" in p and self.seconds_left() - p["step_s"] < self.final_eval_seconds(p)

    def _stop_here(self, trainer) -> None:
        s, p, n = trainer.state, trainer.state.plan, len(trainer.train_source)
        where = f"epoch {s.epoch + 1} of {trainer.epochs}, step {s.next_batch} of {n}"
        left, need = self.seconds_left(), self.final_eval_seconds(p)
        if s.epoch == 0 and s.next_batch < n:
            rest = (n - s.next_batch) * p["step_s"] + p["eval_s"]
            raise UsageError(f"the {self.budget_s / 60:g}-minute budget ran out at {where}, before any epoch "
                             f"finished ({self.elapsed():.0f} s gone, and the final evaluation needs about "
                             f"{need:.0f} s): there is no epoch to evaluate",
                             f"give --minutes {math.ceil((self.elapsed() + rest + need) / 60)} or more "
                             f"(this machine ran slower than its first steps said)")
        p["stopped"] = {"epoch": s.epoch + 1, "step": s.next_batch, "seconds_left": left, "final_eval_s": need}
        p["elapsed_s"] = self.elapsed()
        trainer.save_resume()
        trainer.stop_requested = True
        if trainer.comm.is_writer and trainer.log:
            print(f"[ferlib] {trainer.name}: stopped at {where} (latest.pt saved): {left:.0f} s of the "
                  f"{self.budget_s / 60:g}-minute budget are left for the final evaluation (about {need:.0f} s), "
                  f"of the best epoch so far ({s.best_epoch})", flush=True)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._plan_from_epoch(trainer, record)
        self._share(trainer)

    def _plan_from_epoch(self, trainer, record: dict) -> None:
        now = self.clock()
        epoch, how = record["epoch"], trainer.state.plan.get("planned_by")
        # Epochs 1 and 2 plan in either direction: epoch 1 carries one-off costs (kernel choice,
        # first allocations) and a machine loaded by another job for a while; epoch 2 is the first
        # clean measurement, and the cosine has hardly started, so a longer plan barely moves the
        # learning rate.  A partial epoch (resumed mid-epoch) measures nothing and is skipped.
        if epoch in (1, 2) and how not in ("epoch 2",) and not (epoch == 1 and how == "epoch 1") \
                and not self._resumed_mid_epoch:
            epoch_s = now - self._epoch_start
            eval_s = record["eval_seconds"]
            left = self.seconds_left() - self.final_eval_passes * eval_s
            self._set(trainer, epoch + math.floor(left / epoch_s), f"epoch {epoch}", epoch_s=epoch_s, eval_s=eval_s,
                      step_s=max(0.0, epoch_s - eval_s) / len(trainer.train_source),
                      images_per_s=record["images_per_s"])
            if epoch == 2:
                self._epoch_seconds.append(epoch_s)
        elif epoch > 1 and not self._resumed_mid_epoch:  # off plan (a loaded or a freed machine)? re-plan
            self._epoch_seconds.append(now - self._epoch_start)
            recent = self._epoch_seconds[-self.RECENT_EPOCHS:]
            epoch_s = statistics.median(recent)
            left = self.seconds_left() - self.final_eval_passes * record["eval_seconds"]
            fits = record["epoch"] + max(0, math.floor(left / epoch_s))
            if fits < trainer.epochs or (fits > trainer.epochs and len(recent) == self.RECENT_EPOCHS):
                plan = {k: v for k, v in trainer.state.plan.items() if k not in ("budget_s", "epochs", "planned_by")}
                self._set(trainer, max(fits, record["epoch"]), f"re-planned after epoch {record['epoch']}", **plan)
        trainer.state.plan["elapsed_s"] = self.elapsed()
        self._epoch_start, self._resumed_mid_epoch = now, False


class ProgressBar(Callback):
    def __init__(self, name: str, budget: TimeBudget | None = None):
        self.name, self.budget, self.bar, self.quiet = name, budget, None, False

    def _open(self, trainer, initial: int) -> None:
        from tqdm.auto import tqdm

        s = trainer.state
        self.bar = tqdm(total=len(trainer.train_source), initial=initial, leave=False, unit="batch",
                        desc=f"{self.name} epoch {s.epoch + 1}/{trainer.epochs}")

    def on_fit_start(self, trainer) -> None:
        self.quiet = not trainer.comm.is_writer  # rank 0 speaks for all
        if not self.quiet:
            self._open(trainer, trainer.state.next_batch)

    def on_step_end(self, trainer) -> None:
        if self.quiet:
            return
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
        if self.quiet:
            return
        lr, val_loss = record["lr"], record.get("val_loss")
        loss = f"  loss {val_loss:.4f}" if val_loss is not None else ""
        note = f"  [{record['protocol']}]" if record.get("protocol") else ""
        print(f"[{self.name}] epoch {record['epoch']}/{trainer.epochs}  train loss {record['train_loss']:.4f}  "
              f"PublicTest acc {record['val_accuracy']:.4f}{loss}  lr {lr:.2g}  {record['train_seconds']:.1f} s{note}",
              flush=True)

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
