"""Sobel-Laplacian-CL's recipes (Tables I, II, the λ sweep), the Adam step schedule, and a FER+ run that resumes exactly."""
from __future__ import annotations

import math

import pytest
import torch

from ferlib.train.callbacks import StopTraining
from ferlib.train.checkpoint import load_checkpoint_dict
from ferlib.train.criteria import CenterLossConfig, CrossEntropyConfig
from ferlib.train.recipes import RECIPES, get_recipe
from ferlib.train.recipes.ferplus import (LAMBDA_SWEEP, SWEEP_RECIPES, TABLE_I, TABLE_II, recipe_lambda,
                                          sweep_name)
from ferlib.train.schedules import StepDecay, budget_schedule, build_schedule, step_schedule_name

# the paper's tables, typed once more here so that a slip in the recipe module is caught
PAPER_TABLE_I = {"O-SL": ("O", None, 83.85, 83.15, 84.89), "O-L-SL": ("O+L", None, 86.22, 85.94, 86.56),
                 "O-S-SL": ("O+S", None, 86.42, 86.08, 86.55), "O-TL": ("O", 0.05, 85.70, 85.24, 85.97),
                 "O-L-TL": ("O+L", 1.0, 86.95, 86.59, 87.32), "O-S-TL": ("O+S", 0.1, 86.86, 86.48, 87.24)}
PAPER_TABLE_II = {"base + SL": ("O", None, 81.95), "base+L+SL": ("O+L", None, 84.26),
                  "base+S+SL": ("O+S", None, 84.47), "base + TL": ("O", 0.5, 82.37),
                  "base+L+TL": ("O+L", 1.0, 83.70), "base+S+TL": ("O+S", 0.01, 84.80)}


def _by_row(table: str) -> dict:
    return {r.row.split(": ", 1)[1].split(" (")[0].split(" [")[0].split(",")[0]: r for r in RECIPES.values()
            if r.paper == "sobel-laplacian-cl" and r.row.startswith(table + ":")}


def test_table_i_rows():
    rows = _by_row("Table I")
    assert set(rows) == set(PAPER_TABLE_I) and len(rows) == len(TABLE_I)
    for title, (channels, lam, avg, lo, hi) in PAPER_TABLE_I.items():
        r = rows[title]
        assert r.model == "vgg13" and r.model_kwargs == {"channels": channels}
        assert r.paper_results == {"PrivateTest": avg, "PrivateTest_min": lo, "PrivateTest_max": hi}
        assert (r.criterion == CrossEntropyConfig()) if lam is None else (r.criterion.lambda_ == lam)


def test_table_ii_rows():
    rows = _by_row("Table II")
    assert set(rows) == set(PAPER_TABLE_II) and len(rows) == len(TABLE_II)
    for title, (channels, lam, acc) in PAPER_TABLE_II.items():
        r = rows[title]
        assert r.model == "light-net" and r.model_kwargs == {"channels": channels}
        assert r.paper_results == {"PrivateTest": acc} and recipe_lambda(r) == (lam or 0.0)


def test_paper_protocol_in_every_row():
    for r in RECIPES.values():
        if r.paper != "sobel-laplacian-cl":
            continue
        assert (r.dataset, r.optimizer, r.lr, r.schedule, r.input_size) == ("ferplus", "adam", 3e-4,
                                                                          "step-0.97-per-2-epochs", 64)
        assert r.augment == "ferplus" and r.batch_size == 32 and r.full.epochs == 100
        if isinstance(r.criterion, CenterLossConfig):
            assert r.criterion.alpha == 0.5 and r.criterion.reduction == "mean"


def test_lambda_sweep_in_increasing_order():
    lams = [recipe_lambda(get_recipe(n)) for n in SWEEP_RECIPES]
    assert lams == sorted(lams) and lams[0] == 0 and len(set(lams)) == len(lams) == len(LAMBDA_SWEEP) + 2
    assert sweep_name(0.01) == "light-base-tl-lambda0.01" and get_recipe(sweep_name(10.0)).criterion.lambda_ == 10


def test_reproduce_targets_name_the_tables_and_the_sweep():
    from ferlib.jobs.reproduce import expand_targets

    assert [r.name for r in expand_targets(["sobel-laplacian-cl-table2"])] == list(TABLE_II)
    assert [r.name for r in expand_targets(["sobel-laplacian-cl-table1"])] == list(TABLE_I)
    assert [r.name for r in expand_targets(["sobel-laplacian-cl-lambda-sweep", "light-base-sl"])] == list(SWEEP_RECIPES)
    assert len(expand_targets(["sobel-laplacian-cl"])) == len(TABLE_I) + len(TABLE_II) + len(LAMBDA_SWEEP)


def test_recipes_command_lists_every_row(capsys):
    from ferlib.commands.train import list_recipes

    list_recipes(None)
    out = capsys.readouterr().out
    for name in (*TABLE_I, *TABLE_II, *SWEEP_RECIPES):
        assert f"\n{name} " in out
    assert "PrivateTest 83.85, PrivateTest_min 83.15, PrivateTest_max 84.89" in out


def test_adam_step_schedule():
    """lr 3e-4 x 0.97 every 2 epochs: 3e-4, 3e-4, 2.91e-4, 2.91e-4, 2.8227e-4, ..."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam([{"params": model.parameters()}, {"params": [torch.nn.Parameter(torch.zeros(1))],
                                                             "lr": 1e-3}], lr=3e-4)
    sched = build_schedule("step-0.97-per-2-epochs", None, opt, steps_per_epoch=10)
    assert isinstance(sched, StepDecay) and step_schedule_name(0.97, 2) == "step-0.97-per-2-epochs"
    seen = []
    for epoch in range(7):
        seen.append(sched.lr)
        assert not sched.after_step()  # per epoch, not per step
        changed = sched.after_epoch(1.0)
        assert changed == (epoch % 2 == 1)
    assert seen == pytest.approx([3e-4 * 0.97 ** (e // 2) for e in range(7)], rel=1e-12)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3 * 0.97 ** 3)  # each group from its own base
    again = build_schedule("step-0.97-per-2-epochs", None, torch.optim.Adam(model.parameters(), lr=3e-4), 10)
    again.load_state_dict(sched.state_dict())
    assert again.lr == pytest.approx(sched.lr) and again.epochs_done == 7
    assert build_schedule("step-0.5-per-1-epoch", None, torch.optim.SGD(model.parameters(), lr=1.0), 1).gamma == 0.5


def test_a_budget_keeps_the_step_schedule_only():
    assert budget_schedule("step-0.97-per-2-epochs") == "step-0.97-per-2-epochs"
    for other in ("plateau", "constant", "warmup-cosine"):
        assert budget_schedule(other) == "warmup-cosine"
    with pytest.raises(ValueError):
        StepDecay(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0), gamma=1.5, every_epochs=2)


@pytest.fixture(scope="module")
def synthetic_ferplus():
    from ferlib.data.ferplus import _relabel, synthetic_votes
    from ferlib.data.synthetic import make_synthetic_faces

    faces = make_synthetic_faces(n_per_class=30)
    return _relabel(faces, synthetic_votes(faces), "majority", None, "majority")[0]


def _run(recipe, dataset, run_dir, **kw):
    from conftest import build_test_run

    return build_test_run(recipe, dataset, run_dir, **kw)


@pytest.mark.slow  # ~20 s on 2 busy cores: two short trainings of the 64x64 light network
def test_a_ferplus_run_resumes_exactly(synthetic_ferplus, tmp_path):
    """The light network with S and L channels and center loss, killed mid-epoch 2 and resumed, ends bitwise
    where an uninterrupted run ends (centers, BatchNorm statistics and the schedule included)."""
    from dataclasses import replace

    from ferlib.train.recipes.base import Budget

    recipe = replace(get_recipe("light-base-s-tl"), schedule="step-0.5-per-1-epoch",
                     quick=Budget(epochs=2, train_per_class=10, eval_per_class=3, batch_size=16))
    whole = _run(recipe, synthetic_ferplus, tmp_path / "whole").trainer
    whole.fit()
    steps = len(whole.train_source)
    assert steps >= 4 and whole.schedule.lr == pytest.approx(recipe.lr * 0.25)
    killed = _run(recipe, synthetic_ferplus, tmp_path / "killed", checkpoint_every_steps=2,
                  stop_after_steps=steps + 3).trainer
    with pytest.raises(StopTraining):
        killed.fit()
    assert load_checkpoint_dict(tmp_path / "killed" / "latest.pt")["state"]["epoch"] == 1
    resumed = _run(recipe, synthetic_ferplus, tmp_path / "killed", checkpoint_every_steps=2).trainer
    resumed.fit()
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(whole.criterion.centers, resumed.criterion.centers)
    assert [h["train_loss"] for h in whole.state.history] == [h["train_loss"] for h in resumed.state.history]
    assert resumed.schedule.lr == whole.schedule.lr


def test_a_budget_run_uses_the_papers_schedule(synthetic_ferplus, tmp_path):
    recipe = get_recipe("light-base-sl")
    run = _run(recipe, synthetic_ferplus, tmp_path, minutes=5, stop_after_steps=1)
    assert run.schedule_name == "step-0.97-per-2-epochs" and isinstance(run.trainer.schedule, StepDecay)
    assert math.isclose(run.trainer.schedule.lr, 3e-4)
