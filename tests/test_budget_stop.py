"""A wall-clock budget stops on time (``ferlib.train.callbacks.TimeBudget``), on a fake clock: a machine that stalls
inside an epoch stops at that step with a resumable position and the best epoch so far evaluated; a budget that
cannot fit one epoch and the final evaluation is refused after the first timed steps, with the numbers.  And the
planned stop (StopTraining) is not Ctrl-C; a run folder of another run is a one-message mistake (exit 2)."""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import build_test_run
from ferlib.commands import main
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.errors import UsageError
from ferlib.train.callbacks import Callback, SaveOnInterrupt, StopTraining, TrainingInterrupted
from ferlib.train.checkpoint import load_checkpoint_dict
from ferlib.train.recipes import RECIPES, Budget, smoke_recipe
from ferlib.train.results import evaluate_final

RECIPE = smoke_recipe(batch_size=16, quick=Budget(epochs=1, train_per_class=40, eval_per_class=4))
STEP_S = 2.0  # fake seconds per training step


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=40, seed=0)


class FakeClock(Callback):
    """Wall-clock seconds that advance ``STEP_S`` at each step's end, plus ``stalls[steps]`` (first callback)."""

    def __init__(self, stalls: dict | None = None):
        self.now, self.stalls = 0.0, stalls or {}

    def __call__(self) -> float:
        return self.now

    def on_step_end(self, trainer) -> None:
        self.now += STEP_S + self.stalls.get(trainer.state.steps, 0.0)


def _budget_run(synthetic, run_dir, minutes: float, clock: FakeClock):
    """14 steps of 16 faces per epoch; the plan calibrated on steps 2-5 (one warm-up step)."""
    run = build_test_run(RECIPE, synthetic, run_dir, minutes=minutes)
    b = run.budget
    b.clock, b.started, b.skip_steps, b.calibration_steps = clock, 0.0, 1, 4
    run.trainer.callbacks.insert(0, clock)  # the clock moves before the budget reads it
    assert len(run.trainer.train_source) == 14
    return run


def test_a_stall_inside_an_epoch_stops_at_that_step_with_a_resumable_position(synthetic, tmp_path):
    """10 minutes at 2 s a step: epoch 1 (28 s) plans many epochs; step 6 of epoch 2 stalls until 1 s before the
    budget ends, so the run stops at that step boundary (no later step, nothing past the budget), saves latest.pt
    at epoch 2 step 6, and the final evaluation takes epoch 1; the same command again goes straight to it."""
    stall_step = 14 + 6
    clock = FakeClock({stall_step: 600 - 1 - STEP_S * stall_step})
    run = _budget_run(synthetic, tmp_path, 10, clock)
    t = run.trainer
    state = t.fit(resume=False)  # no exception: the budget's stop is a normal end of the fit
    assert state.steps == stall_step and clock.now == 599.0
    assert state.epoch == 1 and state.next_batch == 6 and [h["epoch"] for h in state.history] == [1]
    assert state.plan["planned_by"] == "epoch 1" and state.plan["epochs"] > 2
    stopped = state.plan["stopped"]
    assert stopped["epoch"] == 2 and stopped["step"] == 6 and 0 < stopped["seconds_left"] == 1.0
    assert stopped["final_eval_s"] == pytest.approx(12 * state.plan["eval_s"])
    saved = load_checkpoint_dict(tmp_path / "latest.pt")["state"]
    assert (saved["epoch"], saved["next_batch"], saved["steps"]) == (1, 6, stall_step)
    assert saved["plan"]["stopped"] == stopped
    assert evaluate_final(run)["selected_epoch"] == 1  # what run_recipe evaluates: the best epoch so far

    again = _budget_run(synthetic, tmp_path, 10, FakeClock())
    state = again.trainer.fit()  # resumes the stopped run: no step is taken
    assert again.trainer.stop_requested and state.steps == stall_step and state.next_batch == 6


def test_a_budget_that_cannot_fit_one_epoch_is_refused_after_the_timed_steps(synthetic, tmp_path):
    """After steps 2-5 (2 s each) of a 15-second budget: an epoch is 14 x 2 s + PublicTest (28 faces at a third of a
    16-face step each: 1.2 s); epoch 1's rest and 12 final PublicTest passes do not fit.  The message names the
    epoch and the smallest --minutes that fits: ceil((10 s gone + 9 steps + 13 passes) / 60)."""
    run = _budget_run(synthetic, tmp_path, 0.25, FakeClock())
    eval_s = 28 / 16 * STEP_S / 3
    epoch_s = 14 * STEP_S + eval_s
    minimum = math.ceil((5 * STEP_S + 9 * STEP_S + 13 * eval_s) / 60)
    with pytest.raises(UsageError) as e:
        run.trainer.fit(resume=False)
    assert run.trainer.state.steps == 5  # refused at the calibration step, before the budget is spent
    msg = str(e.value)
    assert "0.25-minute budget cannot fit one epoch" in msg and f"about {epoch_s:.0f} s" in msg
    assert f"about {12 * eval_s:.0f} s" in msg and f"--minutes {minimum} or more" in msg, msg


def test_a_stall_before_the_first_epoch_ends_is_refused_with_what_would_fit(synthetic, tmp_path):
    clock = FakeClock({8: 300.0})  # after a plan that fits (2 minutes), step 8 stalls past the budget
    run = _budget_run(synthetic, tmp_path, 2, clock)
    with pytest.raises(UsageError, match=r"ran out at epoch 1 of \d+, step 8 of 14, before any epoch finished"):
        run.trainer.fit(resume=False)
    assert run.trainer.state.plan["planned_by"] == "calibration" and "stopped" not in run.trainer.state.plan


def test_the_planned_stop_is_not_ctrl_c(synthetic, tmp_path):
    run = build_test_run(RECIPE, synthetic, tmp_path / "planned", stop_after_steps=2)
    with pytest.raises(StopTraining, match="stopped after 2 steps"):
        run.trainer.fit(resume=False)
    assert not (tmp_path / "planned" / "latest.pt").exists()  # a planned stop saves nothing, as a kill would
    run = build_test_run(RECIPE, synthetic, tmp_path / "ctrl-c")
    ctrl_c = next(cb for cb in run.trainer.callbacks if isinstance(cb, SaveOnInterrupt))
    run.trainer.callbacks.append(type("Press", (Callback,), {"on_step_end": lambda self, t: setattr(
        ctrl_c, "requested", True)})())
    with pytest.raises(TrainingInterrupted) as e:
        run.trainer.fit(resume=False)
    assert not isinstance(e.value, StopTraining) and "run the same command to resume" in str(e.value)


def _train(*extra) -> list[str]:
    return ["train", "tiny-densenet-demo", "--profile", "quick", "--device", "cpu", "--quiet", "--precision", "fp32",
            *extra]


def test_cli_planned_stop_and_another_runs_folder(tmp_path, monkeypatch, capsys):
    """--stop-after-steps: one line, status 1, no results.  A recipe changed since the run folder was written:
    one message naming the folder, what differs and what to do, status 2 (no traceback)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    out = tmp_path / "out"
    assert main(_train("--out", str(out), "--stop-after-steps", "1")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stopped after 1 steps" in err and "no results written" in err, err
    assert not out.exists() or not list(out.iterdir())
    assert main(_train("--out", str(out))) == 0  # the same command resumes and finishes
    (run_dir,) = Path(os.environ["FERLIB_RUNS_DIR"]).iterdir()  # the run folder says what data it trained on
    assert run_dir.name == "tiny-densenet-demo-quick-synthetic-seed0"
    monkeypatch.setitem(RECIPES, "tiny-densenet-demo", replace(RECIPES["tiny-densenet-demo"], lr=0.01))
    capsys.readouterr()
    assert main(_train("--out", str(out))) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "belongs to a different run (recipe.lr differ" in err, err
    assert str(run_dir) in err and "--fresh" in err and "--run-dir" in err, err
