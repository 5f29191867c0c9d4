"""A run's identity (ferlib.runs): names, folders, results paths, and finding runs largest budget first."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ferlib.train.recipes import get_recipe
from ferlib.runs import (RunKey, budget_size, budget_tag, find_run, find_runs, find_trained, is_budget_result,
                               resolve_model, split_sizes)

KIT = Path(__file__).resolve().parent.parent


@pytest.fixture
def kit_dirs(tmp_path, monkeypatch):
    """Empty results/ and runs/ folders in place of the kit's own (committed models/ stay visible)."""
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_budget_tag_names_device_and_threads():
    assert budget_tag(60, torch.device("cpu"), threads=1) == "60min-cpu-1thread"
    assert budget_tag(60, torch.device("cpu"), threads=2) == "60min-cpu-2threads"
    assert budget_tag(7.5, torch.device("cuda")) == "7.5min-cuda"


def test_budgets_order_full_then_cuda_then_cpu_by_size_then_quick():
    order = ["full", "10min-cuda", "60min-cpu-2threads", "60min-cpu-1thread", "quick"]
    assert sorted(order[::-1], key=budget_size, reverse=True) == order
    with pytest.raises(ValueError, match="not a budget"):
        budget_size("60min")


@pytest.mark.parametrize("name, key", [
    ("densenet-bc-60min-cpu-2threads-seed0", RunKey("densenet-bc", "60min-cpu-2threads")),
    ("densenet-bc-center-60min-cpu-2threads", RunKey("densenet-bc-center", "60min-cpu-2threads")),
    ("densenet-bc-quick-synthetic-seed3", RunKey("densenet-bc", "quick", 3, synthetic=True)),
    ("wide-densenet-full-seed1", RunKey("wide-densenet", "full", 1)),
    ("densenet-bc-notes", None),
])
def test_run_names_parse_back_to_their_key(name, key):
    assert RunKey.parse(name) == key
    if key is not None:
        assert RunKey.parse(key.name) == key


def test_the_run_folder_says_which_data_it_holds(kit_dirs):
    real = RunKey.for_training("densenet-bc", "quick")
    fake = RunKey.for_training("densenet-bc", "quick", synthetic=True)
    assert real.run_dir() != fake.run_dir() and "synthetic" in fake.run_dir().name
    assert real.results_path() != fake.results_path()


def test_own_results_stay_out_of_the_tracked_folder_unless_published(kit_dirs):
    key = RunKey.for_training("densenet-bc", "quick", minutes=60, device="cpu")
    tag = budget_tag(60, "cpu")
    assert key.results_path() == kit_dirs / "results" / "local" / "budget" / f"densenet-bc-{tag}.json"
    assert key.results_path(published=True) == kit_dirs / "results" / "budget" / f"densenet-bc-{tag}.json"
    assert RunKey("densenet-bc", "full").results_path(published=True) == kit_dirs / "results" / "densenet-bc.json"
    assert RunKey("densenet-bc", "quick").results_path() == kit_dirs / "results" / "local" / "quick" / "densenet-bc.json"
    assert RunKey("densenet-bc", "full", 2).results_path().name == "densenet-bc-seed2.json"


def _write(path: Path, obj=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj or {"metrics": {}}))


def test_find_runs_largest_first_kit_before_yours_and_not_a_longer_named_sibling(kit_dirs):
    res = kit_dirs / "results"
    _write(res / "budget" / "densenet-bc-60min-cpu-1thread.json")
    _write(res / "budget" / "densenet-bc-center-60min-cpu-2threads.json")  # another recipe
    _write(res / "local" / "budget" / "densenet-bc-60min-cpu-2threads.json")  # yours, larger
    _write(res / "local" / "budget" / "densenet-bc-60min-cpu-1thread.json")  # yours, same budget as the kit's
    (kit_dirs / "runs" / "densenet-bc-quick-synthetic-seed0").mkdir(parents=True)
    _write(res / "local" / "quick" / "densenet-bc-synthetic.json")  # the same run's results
    _write(res / "local" / "quick" / "densenet-bc-center-synthetic.json")  # another recipe's
    runs = find_runs("densenet-bc", synthetic=None)
    got = [(r.key.budget, r.origin) for r in runs]
    # the kit's committed models/densenet-bc-60min-cpu-2threads.pt is a kit run of that budget
    assert got[:4] == [("60min-cpu-2threads", "kit"), ("60min-cpu-2threads", "yours"),
                       ("60min-cpu-1thread", "kit"), ("60min-cpu-1thread", "yours")]
    assert got[-1] == ("quick", "yours") and runs[-1].key.synthetic
    assert runs[-1].run_dir.name == "densenet-bc-quick-synthetic-seed0"
    assert runs[-1].results_path == res / "local" / "quick" / "densenet-bc-synthetic.json"
    assert all(r.key.recipe == "densenet-bc" for r in runs)
    assert {r.origin for r in find_runs("densenet-bc", own=False)} == {"kit"}
    assert find_run("densenet-bc", synthetic=True).key.budget == "quick"


def test_the_committed_models_are_found_and_resolve_by_recipe_run_name_or_file(kit_dirs):
    run = find_trained("densenet-bc-center")
    assert run is not None and run.origin == "kit" and run.checkpoint.is_file()
    assert run.checkpoint.parent == KIT / "models"
    assert resolve_model("densenet-bc-center").checkpoint == run.checkpoint
    assert resolve_model(run.key.name).checkpoint == run.checkpoint
    assert resolve_model(str(run.checkpoint)) == run.checkpoint
    with pytest.raises(LookupError):
        resolve_model("no-such-recipe")


def test_a_budget_result_is_read_as_trained_on_the_whole_splits():
    """``--minutes`` trains on the whole splits whatever the profile: the rebuilt splits must be whole too,
    for files that say ``"profile": "budget"`` and for older ones that said ``"quick"`` with a wall-clock block."""
    r = get_recipe("densenet-bc")
    quick = r.budget("quick")
    assert (quick.train_per_class, quick.eval_per_class) != (None, None)
    new = {"profile": "budget", "budget": {"kind": "wall-clock", "minutes": 60}}
    old = {"profile": "quick", "budget": {"kind": "wall-clock", "minutes": 60}}
    smoke = {"profile": "quick", "budget": {"kind": "profile", "epochs": 2}}
    assert is_budget_result(new) and is_budget_result(old) and not is_budget_result(smoke)
    assert split_sizes(new, r) == split_sizes(old, r) == (None, None)
    assert split_sizes(smoke, r) == (quick.train_per_class, quick.eval_per_class)
    assert split_sizes({"profile": "full", "budget": {"kind": "profile"}}, r) == (None, None)
    committed = KIT / "results" / "budget" / "densenet-bc-60min-cpu-2threads.json"
    assert split_sizes(json.loads(committed.read_text()), r) == (None, None)
