"""Chapter 08's tables from the results files: several seeds per row, Sobel-Laplacian-CL's numbers beside ours.

Defined in chapter 08.  A row of Tables I and II is trained with several seeds on one equal
budget (:data:`RUN_PLAN`), so our column is a mean with its standard error over the seeds, and
its minimum and maximum -- the paper's Table I gives Avg / Min / Max.  Everything here is read
from results files through :func:`ferlib.runs.find_runs` (the kit's committed runs under
``results/``, and yours under ``results/local/``, labelled); nothing is typed in.  A row with
no real result says "not yet run" and the one command that makes it.
"""
from __future__ import annotations

from ..jobs.tables import RowRuns, convergence, gain, row_runs  # noqa: F401  (the chapter's calls)
from ..train.recipes import get_recipe

RUN_PLAN = {"light-net": (30, 1), "vgg13": (60, 1)}
"""(minutes, threads) of one run on the kit's 2-core CPU: every row of a network gets the same wall-clock
budget, and the two arms of a comparison run side by side, one core each.  Two epochs (an 8-minute
light-network run) left every row predicting the majority class (neutral): the light network needs
tens of epochs before its rows differ.  At 30 minutes (9-10 epochs on one core of the shared 2-core
Zen 4 machine) the first rows had just left it (PublicTest 36.9 % for 5-7 epochs, then 45-48 %):
still far from converged, which the chapter says beside them."""
SWEEP_PLAN = (20, 1)
"""(minutes, threads) of one run of the λ sweep (Fig. 3, light network, face alone): shorter than a Table II
row so that one seed of the whole curve -- λ = 0 and the λ > 0 points, run two side by side on one day -- fits
in about an hour of the 2-core machine.  Every point shares this budget, so the curve reads only runs made on
it; a point is the mean over its seeds."""
SEEDS = (0, 1)
"""The seeds of each Table II row (Table I's VGG13 rows: seed 0)."""


def train_command(recipe: str, seed: int = 0, *, publish: bool = False, plan: tuple[int, int] | None = None) -> str:
    """The one command that makes a row's run (on the equal budget of its network, or on ``plan``)."""
    minutes, threads = plan or RUN_PLAN[get_recipe(recipe).model]
    return (f"python -m ferlib train {recipe} --minutes {minutes} --seed {seed} --threads {threads}"
            + (" --publish" if publish else ""))


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


def sweep_budget() -> str:
    """The budget tag every point of the λ curve is read at (:data:`SWEEP_PLAN`)."""
    from ..runs import budget_tag

    minutes, threads = SWEEP_PLAN
    return budget_tag(minutes, "cpu", threads)


def sweep_runs(recipe: str, *, own: bool = True) -> RowRuns:
    """The runs of one λ-curve point on the sweep's budget (a Table II row's 30-minute runs are not points)."""
    return row_runs(recipe, own=own, budget=sweep_budget())
