"""Paper beside ours: the tables chapters and ``reproduce`` print from recorded results files.

Each row reads a results file found by :func:`ferlib.runs.find_runs` -- the kit's committed
runs and, labelled as such, your own -- and puts our number beside the paper's for every key of
the recipe's ``paper_results``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..runs import find_runs


def load_results(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


NOT_RUN = "not yet run"
HOW_TO_RUN = "needs a GPU: python -m ferlib train {name} --profile full"


def _ours(results: dict, key: str):
    """Our number (in %) for a ``paper_results`` key, or ``None`` when the results file lacks it.

    ``PublicTest`` / ``PrivateTest``: accuracy on that split; ``ensemble_<split>``: the
    last-five checkpoint ensemble; ``accuracy`` / ``f1`` (CL-ResNet50 Table 3, whose
    evaluation split is not stated): PrivateTest accuracy / macro F1.
    """
    metrics = results.get("metrics", {})
    if key in metrics:
        return round(100 * metrics[key]["accuracy"], 1)
    if key.startswith("ensemble_"):
        v = (results.get("ensemble_last5") or {}).get(key[len("ensemble_"):])
        return None if v is None else round(100 * v, 1)
    test = metrics.get("PrivateTest", {})
    field = {"accuracy": "accuracy", "f1": "macro_f1", "macro_f1": "macro_f1",
             "weighted_f1": "weighted_f1"}.get(key)
    if field in test:
        return round(100 * test[field], 1)
    return None


def run_label(results: dict) -> str:
    """What kind of run a results file holds: ``full profile`` or ``60-min budget``, with its device."""
    prov = results.get("provenance", {})
    budget = results.get("budget") or {}
    kind = f"{budget['minutes']:g}-min budget" if budget.get("kind") == "wall-clock" else f"{results.get('profile')} profile"
    threads = f", {prov.get('cpu_threads')} thread(s)" if str(prov.get("device", "")).startswith("cpu") else ""
    return f"{kind}, {prov.get('device_name')}{threads}, {results.get('epochs_run')} epochs, {results.get('precision', 'fp32')}"


def paper_vs_ours(names, *, recipes=None, budget_runs: bool = True, own: bool = True):
    """Paper numbers beside ours for each recipe name (pandas DataFrame).

    One row for the full-profile run ("not yet run" and the command when there is none), plus
    one row per wall-clock-budget run when ``budget_runs``: the kit's committed runs and, with
    ``own``, yours (``results/local/``), each labelled.  The ``run`` column names the budget,
    device, threads, epochs and precision; ``status`` the file and git sha.  A name that is not
    a registered recipe gets a row that says so.  Quick-profile runs are smoke tests, not rows.
    """
    import pandas as pd

    from .. import paths

    if recipes is None:
        from ..train.recipes import RECIPES as recipes
    rows = []
    for name in names:
        recipe = recipes.get(name)
        if recipe is None:
            rows.append({"recipe": name, "row": "(not a registered recipe in this version of ferlib)"})
            continue
        found = [r for r in find_runs(name, synthetic=None, seed=None, own=own)
                 if r.results_path is not None and r.key.budget != "quick" and (budget_runs or not r.key.is_budget)]
        entries = [(r, r.results()) for r in found]
        if not any(r.key.budget == "full" for r in found):
            entries.insert(0, (None, None))
        for run, results in entries:
            if run is not None and results is None:
                continue
            label = run_label(results) if results else "full profile"
            if run is not None and run.origin == "yours":
                label += " (your run)"
            row = {"recipe": name, "row": recipe.row, "run": label}
            for key, value in recipe.paper_results.items():
                row[f"paper {key}"] = value
                ours = _ours(results, key) if results else NOT_RUN
                row[f"ours {key}"] = ours if ours is not None else "not in results file"
            if results is None:
                row["status"] = HOW_TO_RUN.format(name=name)
            else:
                prov = results.get("provenance", {})
                where = run.results_path
                where = where.relative_to(paths.kit_root()) if where.is_relative_to(paths.kit_root()) else where
                row["status"] = (f"{where}: git {str(prov.get('git_sha', ''))[:8]}"
                                 + (", SYNTHETIC data" if results.get("synthetic") else ""))
            rows.append(row)
    return pd.DataFrame(rows)
