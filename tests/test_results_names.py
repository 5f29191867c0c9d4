"""Names of wall-clock-budget results and run folders: a CPU run's thread count is part of the name."""
from __future__ import annotations

import torch

from ferlib.train.recipes import get_recipe
from ferlib.train.results import budget_results, budget_tag, default_results_path, is_budget_name, run_name


def test_budget_tag_names_device_and_threads():
    assert budget_tag(60, torch.device("cpu"), threads=1) == "60min-cpu-1thread"
    assert budget_tag(60, torch.device("cpu"), threads=2) == "60min-cpu-2threads"
    assert budget_tag(7.5, torch.device("cuda")) == "7.5min-cuda"


def test_run_and_results_names_use_the_tag(monkeypatch, tmp_path):
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path))
    r = get_recipe("densenet-bc")
    threads = torch.get_num_threads()
    tag = budget_tag(60, torch.device("cpu"), threads)
    assert run_name(r, "quick", 0, 60, torch.device("cpu")) == f"densenet-bc-{tag}-seed0"
    assert default_results_path(r, "quick", 60, torch.device("cpu")) == tmp_path / "budget" / f"densenet-bc-{tag}.json"
    assert default_results_path(r, "full") == tmp_path / "densenet-bc.json"


def test_budget_files_of_a_recipe_not_of_its_longer_named_sibling(tmp_path):
    (tmp_path / "budget").mkdir()
    for stem in ("densenet-bc-60min-cpu", "densenet-bc-60min-cpu-1thread", "densenet-bc-30min-cuda",
                 "densenet-bc-center-60min-cpu-2threads", "densenet-bc-notes"):
        (tmp_path / "budget" / f"{stem}.json").write_text("{}")
    got = {p.stem for p in budget_results("densenet-bc", tmp_path)}
    assert got == {"densenet-bc-30min-cuda", "densenet-bc-60min-cpu", "densenet-bc-60min-cpu-1thread"}
    assert is_budget_name("densenet-bc-center-60min-cpu-2threads-seed0", "densenet-bc-center", "-seed0")
    assert not is_budget_name("densenet-bc-center-60min-cpu-2threads-seed0", "densenet-bc", "-seed0")


def test_a_budget_result_is_read_as_trained_on_the_whole_splits():
    """``--minutes`` trains on the whole splits whatever the profile: the rebuilt splits must be whole too,
    for files that say ``"profile": "budget"`` and for older ones that said ``"quick"`` with a wall-clock block."""
    import json
    from pathlib import Path

    from ferlib.train.results import is_budget_result, split_sizes

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
    committed = Path(__file__).resolve().parent.parent / "results" / "budget" / "densenet-bc-60min-cpu-2threads.json"
    assert split_sizes(json.loads(committed.read_text()), r) == (None, None)
