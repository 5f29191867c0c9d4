"""Chapter 08's tables from the results files: several seeds per row, Sobel-Laplacian-CL's numbers beside ours.

Defined in chapter 08.  A row of Tables I and II is trained with several seeds on one equal
budget (:data:`RUN_PLAN`), so our column is a mean with its standard error over the seeds, and
its minimum and maximum -- the paper's Table I gives Avg / Min / Max.  Everything here is read
from results files through :func:`ferlib.runs.find_runs` (the kit's committed runs under
``results/``, and yours under ``results/local/``, labelled); nothing is typed in.  A row with
no real result says "not yet run" and the one command that makes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..evaluate.metrics import accuracy_standard_error
from ..runs import find_runs
from ..train.recipes import get_recipe

RUN_PLAN = {"light-net": (30, 1), "vgg13": (60, 1)}
"""(minutes, threads) of one run on the kit's 2-core CPU: every row of a network gets the same wall-clock
budget, and the two arms of a comparison run side by side, one core each.  Two epochs (an 8-minute
light-network run) left every row predicting the majority class (neutral): the light network needs
tens of epochs before its rows differ.  At 30 minutes (9-10 epochs on one core of the shared 2-core
Zen 4 machine) the first rows had just left it (PublicTest 36.9 % for 5-7 epochs, then 45-48 %):
still far from converged, which the chapter says beside them."""
SEEDS = (0, 1)
"""The seeds of each Table II row (Table I's VGG13 rows: seed 0)."""


def train_command(recipe: str, seed: int = 0, *, publish: bool = False) -> str:
    """The one command that makes a row's run (on the equal budget of its network)."""
    minutes, threads = RUN_PLAN[get_recipe(recipe).model]
    return (f"python -m ferlib train {recipe} --minutes {minutes} --seed {seed} --threads {threads}"
            + (" --publish" if publish else ""))


@dataclass
class RowRuns:
    """The real (not quick, not synthetic) runs of one recipe on its largest budget: one results dict per seed."""

    recipe: str
    budget: str | None = None
    results: list = field(default_factory=list)  # results dicts, by seed
    seeds: list = field(default_factory=list)
    origins: list = field(default_factory=list)  # "kit" or "yours" per run

    @property
    def n(self) -> int:
        return len(self.results)

    def accuracies(self, split: str = "PrivateTest") -> np.ndarray:
        """Accuracy in % of each seed."""
        return np.array([100 * r["metrics"][split]["accuracy"] for r in self.results])

    def summary(self, split: str = "PrivateTest") -> dict:
        """mean, standard error of the mean over the seeds (None for one seed), min, max, n."""
        a = self.accuracies(split)
        if not len(a):
            return {"mean": None, "se": None, "min": None, "max": None, "n": 0}
        se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None
        return {"mean": float(a.mean()), "se": se, "min": float(a.min()), "max": float(a.max()), "n": len(a)}

    def binomial_se(self, split: str = "PrivateTest") -> float | None:
        """The standard error (points) of one accuracy on this split's images: sqrt(p (1 - p) / n_images)."""
        if not self.results:
            return None
        p = self.accuracies(split).mean() / 100
        n = self.results[0]["metrics"][split]["n"]
        return 100.0 * accuracy_standard_error(p, n)

    def se(self, split: str = "PrivateTest") -> float | None:
        """The mean's standard error: over the seeds when there are several, else one accuracy's binomial one."""
        s = self.summary(split)["se"]
        return s if s is not None else self.binomial_se(split)

    def per_class_recall(self, split: str = "PrivateTest") -> dict | None:
        """Class-wise accuracy (recall, %) averaged over the seeds, in FER+ class order (Fig. 4)."""
        if not self.results:
            return None
        names = list(self.results[0]["metrics"][split]["per_class"])
        return {c: float(np.mean([100 * r["metrics"][split]["per_class"][c]["recall"] for r in self.results]))
                for c in names}

    def label(self) -> str:
        if not self.results:
            return "not yet run"
        r = self.results[0]
        prov = r.get("provenance", {})
        epochs = sorted({x.get("epochs_run") for x in self.results})
        who = " + ".join(sorted(set(self.origins)))
        return (f"{self.budget} ({prov.get('device_name') or prov.get('device')}), {self.n} seed(s), "
                f"{'/'.join(map(str, epochs))} epochs, {who}")


def row_runs(recipe: str, *, own: bool = True) -> RowRuns:
    """The seeds of ``recipe`` on its largest real budget (a quick or synthetic run is never a row)."""
    found = [r for r in find_runs(recipe, synthetic=False, seed=None, own=own)
             if r.results_path is not None and r.key.budget != "quick"]
    if not found:
        return RowRuns(recipe)
    budget = max(found, key=lambda r: r.key.size).key.budget
    out = RowRuns(recipe, budget)
    for r in sorted((r for r in found if r.key.budget == budget), key=lambda r: (r.key.seed, r.origin != "kit")):
        if r.key.seed in out.seeds:
            continue  # the kit's run of a seed wins over yours
        results = r.results()
        if results and "metrics" in results:
            out.results.append(results)
            out.seeds.append(r.key.seed)
            out.origins.append("the kit" if r.origin == "kit" else "your run")
    return out


def convergence(names, *, own: bool = True):
    """One row per real run of ``names``: epochs trained, the epoch kept (best PublicTest), the first epoch
    whose PublicTest accuracy left the majority-class level, and whether it was still rising at the end
    (the kept epoch is the last: the budget, not the network, ended the run) -- pandas DataFrame."""
    import pandas as pd

    rows = []
    for name in names:
        runs_ = row_runs(name, own=own)
        for seed, r in zip(runs_.seeds, runs_.results):
            curve = [h["val_accuracy"] for h in r.get("history", [])]
            if not curve:
                continue
            floor = curve[0]  # epoch 1 of these runs predicts the majority class
            left = next((i + 1 for i, a in enumerate(curve) if a > floor + 0.01), None)
            rows.append({"recipe": name, "seed": seed, "budget": runs_.budget, "epochs": len(curve),
                         "kept epoch": r.get("selected_epoch"), "PublicTest % at epoch 1": round(100 * floor, 1),
                         "first epoch > epoch 1 + 1 point": left, "PublicTest % kept": round(100 * max(curve), 1),
                         "still rising at the end": r.get("selected_epoch") == len(curve)})
    return pd.DataFrame(rows)


def table(names, *, own: bool = True, split: str = "PrivateTest"):
    """Paper beside ours for recipes of Tables I / II (pandas DataFrame): Avg / Min / Max, mean ± SE over seeds."""
    import pandas as pd

    rows = []
    for name in names:
        recipe = get_recipe(name)
        runs = row_runs(name, own=own)
        s = runs.summary(split)
        paper = recipe.paper_results
        row = {"recipe": name, "row": recipe.row.split(": ", 1)[1], "paper Avg": paper.get(split),
               "paper Min": paper.get(f"{split}_min"), "paper Max": paper.get(f"{split}_max")}
        if runs.n:
            se = runs.se(split)
            row.update({"ours mean": round(s["mean"], 2),
                        "± SE": round(se, 2) if se is not None else None,
                        "ours Min": round(s["min"], 2), "ours Max": round(s["max"], 2), "seeds": s["n"],
                        "run": runs.label()})
        else:
            row.update({"ours mean": "not yet run", "run": f"not yet run: {train_command(name)}"})
        rows.append(row)
    out = pd.DataFrame(rows).set_index("recipe")
    if "seeds" in out:
        out["seeds"] = out["seeds"].astype("Int64")  # a count, also beside rows not yet run
    return out


def gain(better: str, base: str, *, split: str = "PrivateTest") -> dict | None:
    """``better`` minus ``base`` in points, with the standard error of the difference; None if either has no run."""
    a, b = row_runs(better), row_runs(base)
    if not a.n or not b.n:
        return None
    diff = a.summary(split)["mean"] - b.summary(split)["mean"]
    se = math.sqrt(a.se(split) ** 2 + b.se(split) ** 2)
    return {"difference": diff, "se": se, "z": diff / se if se > 0 else float("inf"), "n": (a.n, b.n),
            "budgets": (a.budget, b.budget)}


def paper_gain(better: str, base: str, key: str = "PrivateTest") -> float:
    """The same difference in the paper's table (points)."""
    return get_recipe(better).paper_results[key] - get_recipe(base).paper_results[key]
