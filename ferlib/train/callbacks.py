"""What hangs on the trainer's loop without being part of it.

A callback gets ``on_fit_start(trainer)``, ``on_step_end(trainer)`` after every
optimiser step, ``on_epoch_end(trainer, record)`` after each epoch's evaluation and
checkpoints, and ``on_fit_end(trainer)``.  The ones here:

* :class:`MidEpochCheckpoint` -- ``latest.pt`` every N steps / S seconds inside an
  epoch, so a killed run resumes mid-epoch (bitwise: see ``ferlib.data.batches``).
* :class:`StopAfterSteps` -- a simulated kill for tests and demos.
* :class:`SaveOnInterrupt` -- Ctrl-C ends the run at the next step with a resumable
  checkpoint and one line saying where it stopped and how to resume.
* :class:`LongRunWarning` -- an epoch budget that will take hours says so early.
* :class:`TimeBudget` -- plans the number of epochs from measured throughput so the
  run fits in M minutes (``--minutes``), and sets the schedule's length.
* :class:`ProgressBar` -- tqdm per epoch, with the time left under a budget.

A callback ends a run by setting ``trainer.stop_requested = True`` (checked before
each epoch) and keeps what it must carry across a resume in
``trainer.state.callback_state[name]``; the DNNRL §4 protocol
(:mod:`ferlib.train.protocols`) does both.
"""
from __future__ import annotations

import math
import statistics
import time


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
    """Raised by :class:`StopAfterSteps` (a simulated kill) and :class:`SaveOnInterrupt` (Ctrl-C).

    In Jupyter it renders as its message alone (``_render_traceback_``): the run was
    stopped on purpose, and the message says how to go on.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


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
    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, trainer) -> None:
        if trainer.state.steps >= self.steps:
            raise TrainingInterrupted(f"stopped after {trainer.state.steps} steps (simulated kill)")


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

    Plan 1 (after ``calibration_steps`` timed steps of epoch 1, a few warm-up steps
    excluded): epochs = what fits at the measured step time, with evaluation estimated
    as a forward pass (1/3 of a training step per image).  Plan 2 (after epoch 1, which
    is the warm-up of the cosine schedule, so its length does not depend on the plan):
    the same from the measured epoch -- training, PublicTest evaluation, checkpoints --
    and a final evaluation of ``final_eval_passes`` PublicTest-sized passes (12: best +
    last five checkpoints, two splits; a k-NN readout adds the embedding of Training,
    PublicTest and PrivateTest, see :func:`ferlib.train.build.build_run`).
    Plan 3 (after epoch 2, the first epoch without one-off costs): the same again, longer
    or shorter -- the 2-core 60-minute run of ``densenet-bc-center`` planned 34 epochs
    from its 103 s first epoch, then ran 86 s epochs and finished in 51 minutes.
    After every later epoch the plan follows the median of the last ``RECENT_EPOCHS``
    epochs, so one slow epoch does not cut the run: the 2-core 60-minute ``densenet-bc``
    run, cut from 45 to 39 epochs on its one slow epoch 5 (a test run shared the cores;
    epochs 5-8 took 83-89 s against 76 s), finished in 52 minutes.  It shortens on that
    median at once (behind plan: another job on the machine) and lengthens once a full
    window of ``RECENT_EPOCHS`` epochs says so: on this kit's shared virtual machine an
    epoch takes 67-87 s from one minute to the next, and a planner that could only shorten
    followed the slow stretches and then finished about 6 minutes early (a 60-minute
    ``densenet-bc-center`` run planned 51, then 44, then 41 epochs by epoch 5, on course for
    53 minutes).  Each change moves the cosine's end by an epoch or two, a small step in
    the learning rate.  An epoch resumed part-way
    measures nothing and plans nothing.  The plan is stored in
    ``trainer.state.plan`` and saved with every checkpoint, so a resumed run keeps it.
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

    def on_fit_start(self, trainer) -> None:
        plan = trainer.state.plan
        if plan.get("epochs"):
            trainer.epochs = plan["epochs"]
            self.budget_s = plan["budget_s"]
            self.started = self.clock() - plan.get("elapsed_s", 0.0)  # the clock continues after a resume
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
            left = self.seconds_left() - (n_batches - s.next_batch) * step_s - eval_s \
                - self.final_eval_passes * eval_s
            self._set(trainer, 1 + math.floor(left / epoch_s), "calibration", step_s=step_s,
                      images_per_s=trainer.train_source.batch_size / step_s)

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
