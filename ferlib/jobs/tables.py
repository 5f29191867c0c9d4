"""Paper beside ours: the tables chapters and ``reproduce`` print from recorded results files.

Each row reads a results file found by :func:`ferlib.runs.find_runs` -- the kit's committed
runs and, labelled as such, your own -- and puts our number beside the paper's for every key of
the recipe's ``paper_results``.  A row trained with several seeds on one budget is a
:class:`RowRuns` (:func:`row_runs`): its mean with the standard error over the seeds, min and max
(Table I of the FER+ paper gives Avg / Min / Max), and :func:`gain` is the difference of two rows
with its standard error; :func:`claims_table` puts it beside the difference a paper claims
(:class:`ferlib.train.recipes.Claim`), and :func:`claims_verdicts` says in words what it is evidence of.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluate.metrics import accuracy_standard_error
from ..runs import find_runs


def load_results(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


NOT_RUN = "not yet run"
HOW_TO_RUN = "needs a GPU: python -m ferlib train {name} --profile full"


def ours_for_key(results: dict, key: str):
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
                ours = ours_for_key(results, key) if results else NOT_RUN
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


def row_runs(recipe: str, *, own: bool = True, budget: str | None = None) -> RowRuns:
    """The seeds of ``recipe`` on its largest real budget, or on ``budget`` (a tag such as ``20min-cpu-1thread``)
    when given -- a curve whose points must share one budget (a quick or synthetic run is never a row)."""
    found = [r for r in find_runs(recipe, synthetic=False, seed=None, own=own)
             if r.results_path is not None and r.key.budget != "quick" and budget in (None, r.key.budget)]
    if not found:
        return RowRuns(recipe, budget)
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


def convergence(names, *, own: bool = True, budget: str | None = None):
    """One row per real run of ``names`` (on ``budget`` when given, as :func:`row_runs`): epochs trained, the
    epoch kept (best PublicTest), the first epoch whose PublicTest accuracy left the majority-class level, and
    whether it was still rising at the end (the kept epoch is the last: the budget, not the network, ended the
    run) -- pandas DataFrame."""
    import pandas as pd

    rows = []
    for name in names:
        runs_ = row_runs(name, own=own, budget=budget)
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


def gain(better: str, base: str, *, split: str = "PrivateTest", budget: str | None = None) -> dict | None:
    """``better`` minus ``base`` in points, with the standard error of the difference (both on ``budget`` when
    given, as :func:`row_runs`); None if either has no run."""
    a, b = row_runs(better, budget=budget), row_runs(base, budget=budget)
    if not a.n or not b.n:
        return None
    diff = a.summary(split)["mean"] - b.summary(split)["mean"]
    se = math.sqrt(a.se(split) ** 2 + b.se(split) ** 2)
    return {"difference": diff, "se": se, "z": diff / se if se > 0 else float("inf"), "n": (a.n, b.n),
            "budgets": (a.budget, b.budget)}


def claims_table(claims, *, split: str = "PrivateTest"):
    """One row per :class:`Claim`: the paper's difference beside ours (mean over seeds, points) with its standard
    error and z, both rows' budgets; "not yet run" where either recipe has no real run (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for c in claims:
        g = gain(c.better, c.base, split=split)
        paper = c.paper_gain
        rows.append({"table": c.table, "change": c.change, "rows": f"{c.better} − {c.base}",
                     "paper (points)": None if paper is None else round(paper, 2),
                     "ours (points)": round(g["difference"], 2) if g else NOT_RUN,
                     "± SE": round(g["se"], 2) if g else None, "z": round(g["z"], 1) if g else None,
                     "seeds": "/".join(map(str, g["n"])) if g else None,
                     "budget": " / ".join(dict.fromkeys(g["budgets"])) if g else None})
    return pd.DataFrame(rows).set_index(["table", "change"] if any(c.table for c in claims) else "change")


def claims_verdicts(table) -> str | None:
    """One Markdown bullet per claim of :func:`claims_table` that has runs: ours with its standard error, beside
    the paper's difference, and what it is evidence of; None when no claim has runs yet."""
    import pandas as pd

    from ..evaluate.wording import difference_phrase, evidence_phrase

    lines = []
    for index, row in table.iterrows():
        if row["ours (points)"] == NOT_RUN:
            continue
        what = ", ".join(index) if isinstance(index, tuple) else index
        ours, se = row["ours (points)"], row["± SE"]
        paper = row["paper (points)"]
        beside = ("; " + difference_phrase(ours, paper, whose="the paper's", suffix=" points", digits=2)
                  if pd.notna(paper) else "")
        lines.append(f"- **{what}** ({row['rows']}, {row['budget']}): ours {ours:+.2f} ± {se:.2f} points{beside} "
                     f"— {evidence_phrase(ours, se)}.")
    return "\n".join(lines) or None


def bench_table(path: str | Path):
    """A ``bench/cpu_paths.py`` results file as a table (pandas DataFrame), or None when the file is missing.

    One row per (model, threads, path): training images/s (the median over the bench's rounds, and the
    slowest and fastest round: a wide range says the machine was busy), the ratio to the same model's
    ``fp32`` path measured in the same run, and the fraction of the
    matrix-product peak of that precision (also measured in the same run).  Ratios, not seconds:
    the CPU differs between machines and days, the ratio of two paths timed side by side much less.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    data = load_results(path)
    rows = []
    for model, by_threads in data["models"].items():
        for threads, paths_ in by_threads.items():
            base = (paths_.get("fp32") or {}).get("images_per_s")
            for name, m in paths_.items():
                if not isinstance(m, dict) or "images_per_s" not in m:
                    continue
                rounds = m.get("rounds") or []
                rows.append({"model": model, "threads": int(threads), "path": name,
                             "images/s": round(m["images_per_s"], 1),
                             "slowest round": round(min(rounds), 1) if rounds else None,
                             "fastest round": round(max(rounds), 1) if rounds else None,
                             "× fp32": round(m["images_per_s"] / base, 2) if base else None,
                             "fraction of matmul peak": (round(m["fraction_of_peak"], 2)
                                                         if m.get("fraction_of_peak") is not None else None)})
    return pd.DataFrame(rows).set_index(["model", "threads", "path"])


def bf16_bound(path: str | Path) -> dict:
    """The largest bf16 / fp32 step ratio a ``bench/cpu_paths.py`` file's own matrix-product peaks allow.

    Per (model, threads): if the fp32 step already runs at a fraction f of the fp32 matmul peak P32,
    a bf16 step running at the bf16 peak P16 would be (P16 / P32) / f times as fast, and no faster.
    A bound from the same run's peaks, not a law: the peak is that of one large matrix product, and a
    well-tiled convolution can come out slightly above it (a fraction above 1).  Where the bound is
    below a speed-up target, the CPU, not the code, is what falls short.
    """
    data = load_results(path)
    bounds = {}
    for model, by_threads in data["models"].items():
        for threads, paths_ in by_threads.items():
            peak = data.get("matmul_peak_gflops", {}).get(str(threads)) or {}
            fraction = (paths_.get("fp32") or {}).get("fraction_of_peak")
            if fraction and peak.get("fp32") and peak.get("bf16"):
                bounds[(model, int(threads))] = peak["bf16"] / peak["fp32"] / fraction
    return bounds


def bench_label(path: str | Path) -> str:
    """Where a bench file was measured: CPU model, batch, rounds, git sha."""
    data = load_results(path)
    prov = data.get("provenance", {})
    return (f"{Path(path).name}: {prov.get('cpu_model') or prov.get('device_name')}, batch {data.get('batch')}, "
            f"{data.get('rounds')} rounds of {data.get('steps')} steps, {data.get('isolation')}, "
            f"git {str(prov.get('git_sha', ''))[:8]}")
