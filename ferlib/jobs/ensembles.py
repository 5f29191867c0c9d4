"""Ensembles of finished runs: load members, predict PublicTest and PrivateTest, combine, record.

A **member** is one run folder (``runs/RECIPE-PROFILE-seedS``): its ``best.pt`` (the
epoch selected on PublicTest), or with ``last_k`` the mean softmax of its last ``k``
``epoch_NNN.pt`` files (DenseNet-CL §IV-C).  Each member predicts through its own
checkpoint's normaliser and evaluation transform (:class:`~ferlib.train.checkpoint.LoadedModel`),
optionally with test-time augmentation (:mod:`ferlib.evaluate.tta`).

The members' probabilities are combined by a plain mean, a majority vote or a weighted
average whose weights differential evolution fits on PublicTest (EmoNet §5); every
ensemble is reported on PrivateTest like a single model -- accuracy, per-class report,
confusion matrix -- beside its members, with the method, weights, TTA and provenance,
in ``results/ensembles/NAME.json`` (quick-profile members: ``results/quick/ensembles/``,
so a smoke test never sits beside real results).

Evaluation data: the PublicTest and PrivateTest of the data the kit finds
(:func:`ferlib.data.discovery.load_fer2013`), cut with
:func:`~ferlib.data.splits.prepare_splits` (seed 0) to ``eval_per_class`` images per
class -- by default the whole splits, or, when every member is a quick-profile run,
the largest quick budget among their recipes.  Every member is scored on the same
images.

    python -m ferlib ensemble densenet-bc densenet-bc-center --method de --tta flip
    python -m ferlib ensemble runs/densenet-bc-full-seed0 --last-k 5
    python -m ferlib ensemble emonet-ensemble      # a paper's ensemble recipe: its members and method

An ensemble recipe (:data:`ferlib.train.recipes.ENSEMBLES`, EmoNet Table 2's weighted ensemble) named
alone stands for its members (their trained runs, as recipe names do) and its method, and its results
carry the paper's numbers and weights beside ours.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import paths, provenance
from ..errors import UsageError
from ..evaluate import ensemble as ens
from ..runs import OWN_RESULTS
from ..evaluate.tta import TTA_MODES, check_mode, tencrop_margin, views_per_image

SPLITS = (ens.FIT_SPLIT, ens.TEST_SPLIT)


class EnsembleError(UsageError):
    """A member cannot join the ensemble (no checkpoint, different classes or data, ...): one line, what to do."""


@dataclass
class Member:
    """One run (a run folder or an exported model file) and the checkpoints that stand for it."""

    name: str
    run_dir: Path
    checkpoints: list  # Paths: best.pt, or the last k epoch files (oldest first)
    class_names: tuple
    recipe: dict
    identity: dict  # what latest.pt says about the run (recipe, profile, seed, data, budget); {} if absent
    eval_transform: dict = field(default_factory=dict)

    @property
    def profile(self) -> str | None:
        if self.identity.get("minutes"):
            return f"{self.identity['minutes']:g}-min budget"
        return self.identity.get("profile")

    @property
    def is_quick(self) -> bool:
        return self.identity.get("profile") == "quick" and not self.identity.get("minutes")

    @property
    def synthetic(self) -> bool | None:
        return (self.identity.get("data") or {}).get("synthetic")

    def describe(self) -> dict:
        return {"name": self.name, "run_dir": str(self.run_dir), "recipe": self.recipe.get("name"),
                "profile": self.profile, "seed": self.identity.get("seed"),
                "checkpoints": [p.name for p in self.checkpoints],
                "epochs": [ens.checkpoint_epoch(p) for p in self.checkpoints if p.name.startswith("epoch_")] or None,
                "data": self.identity.get("data")}


# -- members -----------------------------------------------------------------------------------------

def _resolve(spec: str | Path, profile: str | None = None) -> tuple[str, Path | None, Path | None, dict]:
    """``(name, run folder or None, model file or None, identity)`` of a member named on the command line.

    A run folder, a checkpoint file (e.g. the kit's committed ``models/NAME.pt``), a run name or a
    recipe name (its largest-budget run: :func:`ferlib.runs.find_trained`; ``profile`` limits
    a recipe name to that profile's runs).
    """
    from ..train.recipes import RECIPES
    from ..runs import FoundRun, RunKey, find_trained, resolve_model

    budgets = None if profile is None else (profile,)
    try:
        found = (find_trained(str(spec), budgets=budgets, synthetic=None) if profile and str(spec) in RECIPES
                 else resolve_model(spec, budgets=budgets, synthetic=None))
    except LookupError:
        found = None
    if found is None:
        hint = (f"train it first: python -m ferlib train {spec}" if str(spec) in RECIPES else
                "pass a run folder (runs/NAME), a checkpoint file (e.g. models/densenet-bc-60min-cpu-2threads.pt), "
                "a run name or a recipe name (python -m ferlib recipes lists them)")
        raise EnsembleError(f"{spec!r}: no run folder, checkpoint or trained run of that name; {hint}")
    if isinstance(found, FoundRun):
        run_dir = found.run_dir if found.run_dir is not None and (found.run_dir / "best.pt").is_file() else None
        return found.key.name, run_dir, None if run_dir else found.model_path, _identity_of_key(found.key)
    if found.is_dir():
        return found.name, found, None, {}
    key = RunKey.parse(found.stem)
    return found.stem, None, found, _identity_of_key(key) if key else {}


def _identity_of_key(key) -> dict:
    return {"recipe": {"name": key.recipe}, "profile": key.profile, "minutes": key.minutes, "seed": key.seed,
            "data": {"synthetic": key.synthetic}}


def load_member(spec: str | Path, *, last_k: int | None = None, profile: str | None = None) -> Member:
    """A member from a run folder, checkpoint file, run name or recipe name: its selected model
    (``best.pt``, or the model file itself), or the last ``last_k`` epoch checkpoints of its run folder."""
    from ..train.checkpoint import load_checkpoint_dict

    name, run_dir, model_file, identity = _resolve(spec, profile)
    if last_k is not None:
        if int(last_k) != last_k or last_k < 1:
            raise EnsembleError(f"--last-k must be a positive number of checkpoints, got {last_k}")
        if run_dir is None:
            raise EnsembleError(f"{name}: --last-k {last_k} needs the run's epoch checkpoints (runs/NAME/epoch_NNN.pt), "
                                f"and {model_file} is a single exported model; train the run here (python -m ferlib "
                                f"train RECIPE ...) or drop --last-k")
        files = ens.last_checkpoints(run_dir, int(last_k))
        what = "epoch_NNN.pt"
    elif run_dir is not None:
        files = [run_dir / "best.pt"] if (run_dir / "best.pt").is_file() else []
        what = "best.pt"
    else:
        files, what = [model_file], model_file.name
    if not files:
        raise EnsembleError(f"{run_dir}: no checkpoint ({what}) -- the run has not finished an epoch, or this is not "
                            f"a run folder; train it (python -m ferlib train RECIPE) or pass another folder")
    try:
        head = load_checkpoint_dict(files[-1])
    except (ValueError, FileNotFoundError) as e:
        raise EnsembleError(str(e)) from None
    if run_dir is not None and (run_dir / "latest.pt").is_file():
        try:
            identity = load_checkpoint_dict(run_dir / "latest.pt").get("identity") or identity
        except ValueError:
            pass
    return Member(name=name, run_dir=run_dir or model_file, checkpoints=files, class_names=tuple(head["class_names"]),
                  recipe=head.get("recipe") or identity.get("recipe") or {}, identity=identity,
                  eval_transform=dict(head.get("eval_transform") or {}))


def check_compatible(members: list[Member], dataset=None) -> None:
    """Members must predict the same classes from the same kind of data (and the data found must match)."""
    if not members:
        raise EnsembleError("an ensemble needs at least one member (a run folder or recipe name)")
    first = members[0]
    for m in members[1:]:
        if m.class_names != first.class_names:
            raise EnsembleError(f"{m.name} predicts classes {list(m.class_names)} but {first.name} predicts "
                                f"{list(first.class_names)}: members must be trained on the same class set")
        if None not in (m.synthetic, first.synthetic) and m.synthetic != first.synthetic:
            which = {True: "the SYNTHETIC faces", False: "FER-2013"}
            raise EnsembleError(f"{m.name} was trained on {which[m.synthetic]} but {first.name} on "
                                f"{which[first.synthetic]}: members must be trained on the same data")
    if dataset is not None:
        if tuple(dataset.class_names) != first.class_names:
            raise EnsembleError(f"the data found has classes {list(dataset.class_names)} but the members predict "
                                f"{list(first.class_names)}; pass --data-dir with the data they were trained on")
        trained = {m.synthetic for m in members} - {None}
        found = bool(dataset.synthetic)
        if trained and trained != {found}:
            raise EnsembleError(
                "the members were trained on FER-2013 but no FER-2013 was found (only the synthetic faces); "
                "pass --data-dir or set FERLIB_DATA_DIR" if found else
                "the members were trained on the synthetic faces but FER-2013 was found; evaluate them without "
                "FERLIB_DATA_DIR / --data-dir, or train them on FER-2013")


def default_eval_per_class(members: list[Member]) -> int | None:
    """None (the whole splits), or for all-quick members the largest quick ``eval_per_class`` of their recipes."""
    if not members or not all(m.is_quick for m in members):
        return None
    sizes = [((m.recipe.get("quick") or {}).get("eval_per_class")) for m in members]
    return None if any(s is None for s in sizes) else max(sizes)


def evaluation_splits(dataset, eval_per_class: int | None = None, seed: int = 0) -> dict:
    """PublicTest and PrivateTest of ``dataset`` (``eval_per_class`` images per class, None: all), as FERDatasets."""
    from ..data.splits import prepare_splits

    data = prepare_splits(dataset, None, eval_per_class, seed)
    return {ens.FIT_SPLIT: data.val, ens.TEST_SPLIT: data.test}


# -- probabilities -----------------------------------------------------------------------------------

def member_probabilities(member: Member, splits: dict, *, tta: str = "none", device="cpu",
                         batch_size: int = 256) -> tuple[dict, dict]:
    """The member's probabilities on each split -- the mean over its checkpoints and TTA views, by
    :func:`ferlib.evaluate.ensemble.mean_softmax` (the last-k ensemble's one home) -- and seconds per split."""
    import torch

    from ..train.checkpoint import load_checkpoint_dict, load_model
    from ..train.precision import autocast_dtype

    check_mode(tta)
    loaded = load_model(member.checkpoints[-1], device=device)  # architecture, normaliser, evaluation transform
    if not getattr(loaded, "has_softmax_head", True):
        raise EnsembleError(f"{member.name}: {member.checkpoints[-1].name} has no softmax head (an embedding read "
                            f"out by k-NN); a probability ensemble needs members with a classifier")
    weights = [load_checkpoint_dict(p)["model"] for p in member.checkpoints]
    dtype = autocast_dtype(loaded.meta.get("precision"))
    probs, seconds = {}, {}
    for split, ds in splits.items():
        t = time.perf_counter()
        source = loaded.eval_source(ds.pixels, ds.labels, batch_size=batch_size)
        probs[split] = ens.mean_softmax(loaded.model, weights, {split: source}, autocast_dtype=dtype, tta=tta,
                                        margin=tencrop_margin(loaded.augment))[split].astype(np.float64)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        seconds[split] = time.perf_counter() - t
    return probs, seconds


@dataclass
class EnsembleInputs:
    """Every member's probabilities on the same PublicTest and PrivateTest images."""

    members: list  # Member
    probs: dict  # split -> (M, N, K)
    labels: dict  # split -> (N,)
    seconds: dict  # member name -> {split: seconds}
    tta: str
    eval_per_class: int | None
    class_names: tuple
    data: dict

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]


def collect_probabilities(members: list[Member], dataset, *, tta: str = "none", eval_per_class: int | None = None,
                          device="cpu", batch_size: int = 256) -> EnsembleInputs:
    """Check the members against each other and the data, then predict both evaluation splits with each."""
    check_compatible(members, dataset)
    seen = {}
    for m in members:  # the same run twice: keep both, with distinct names
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name} (copy {seen[m.name]})"
    splits = evaluation_splits(dataset, eval_per_class)
    probs, seconds = {s: [] for s in splits}, {}
    for m in members:
        p, sec = member_probabilities(m, splits, tta=tta, device=device, batch_size=batch_size)
        for s in splits:
            probs[s].append(p[s])
        seconds[m.name] = sec
    return EnsembleInputs(members=members, probs={s: np.stack(v) for s, v in probs.items()},
                          labels={s: np.asarray(d.labels, dtype=np.int64) for s, d in splits.items()},
                          seconds=seconds, tta=tta, eval_per_class=eval_per_class,
                          class_names=tuple(dataset.class_names),
                          data={"source": dataset.source, "format": dataset.format, "tag": dataset.tag,
                                "synthetic": bool(dataset.synthetic),
                                **{s: int(len(d)) for s, d in splits.items()}})


# -- evaluation --------------------------------------------------------------------------------------

def _metrics(scores: np.ndarray, labels: np.ndarray, class_names, probabilities: bool) -> dict:
    from ..evaluate.metrics import classification_metrics

    out = classification_metrics(scores, labels, class_names)
    out["nll"] = ens.negative_log_likelihood(scores, labels) if probabilities else None
    return out


def evaluate_ensemble(inputs: EnsembleInputs, method: str = "mean", *, objective: str = "nll", seed: int = 0) -> dict:
    """Combine the members (weights fitted on PublicTest for "de") and score both splits.

    Returns the method, weights, the ensemble's and each member's metrics per split, the
    best member (chosen on PublicTest) and the members' error correlations.
    """
    if method not in ens.METHODS:
        raise EnsembleError(f"unknown ensemble method {method!r}; choose one of {', '.join(ens.METHODS)}")
    if objective not in ens.OBJECTIVES:
        raise EnsembleError(f"unknown objective {objective!r}; choose one of {', '.join(ens.OBJECTIVES)}")
    names = inputs.names
    m = len(names)
    weights = None
    if method == "de":
        weights = ens.differential_evolution_weights(inputs.probs[ens.FIT_SPLIT], inputs.labels[ens.FIT_SPLIT],
                                                     split=ens.FIT_SPLIT, seed=seed, objective=objective)
    elif method == "mean":
        weights = np.full(m, 1.0 / m)
    out = {"method": method, "weights": None if weights is None else [float(w) for w in weights]}
    if method == "de":
        out.update({"objective": objective, "fitted_on": ens.FIT_SPLIT, "de_seed": seed,
                    "de_settings": {k_: (list(v) if isinstance(v, tuple) else v) for k_, v in ens.DE_SETTINGS.items()},
                    "objective_on_fit_split": ens.ensemble_objective(weights, inputs.probs[ens.FIT_SPLIT],
                                                                     inputs.labels[ens.FIT_SPLIT], objective)})
    if method == "vote":
        out["tie_rule"] = "most votes; ties to the highest mean probability, then the lowest class index"
    out["metrics"] = {s: _metrics(ens.combine(inputs.probs[s], method, weights), inputs.labels[s], inputs.class_names,
                                  probabilities=method != "vote") for s in SPLITS}
    out["member_metrics"] = {name: {s: _metrics(inputs.probs[s][i], inputs.labels[s], inputs.class_names, True)
                                    for s in SPLITS} for i, name in enumerate(names)}
    best = max(names, key=lambda n: out["member_metrics"][n][ens.FIT_SPLIT]["accuracy"])
    out["best_member"] = {"name": best, "chosen_on": ens.FIT_SPLIT,
                          **{s: out["member_metrics"][best][s]["accuracy"] for s in SPLITS}}
    out["gain_over_best_member"] = {s: out["metrics"][s]["accuracy"] - out["best_member"][s] for s in SPLITS}
    out["error_correlation"] = {s: np.round(ens.error_correlation(inputs.probs[s], inputs.labels[s]), 6).tolist()
                                for s in SPLITS}
    out["ambiguity"] = {s: ens.ambiguity_decomposition(inputs.probs[s], inputs.labels[s],
                                                       None if weights is None else weights) for s in SPLITS}
    return out


def default_name(members: list[Member], method: str, tta: str, last_k: int | None) -> str:
    parts = [method] + ([f"tta-{tta}"] if tta != "none" else []) + ([f"last{last_k}"] if last_k else [])
    return "+".join(m.name for m in members) + "--" + "-".join(parts)


def results_path_for(name: str, members: list[Member], *, published: bool = False) -> Path:
    """``results/local/ensembles/NAME.json`` (``quick/ensembles/`` when any member is a quick run); with
    ``published``, the kit's tracked ``results/ensembles/`` (never for quick members)."""
    quick = any(m.is_quick for m in members)
    if published and quick:
        raise EnsembleError("--publish writes the kit's tracked results, and quick-profile members are a smoke "
                            "test, not a result; drop --publish")
    root = paths.results_dir() if published else paths.results_dir() / OWN_RESULTS
    return (root / "quick" / "ensembles" if quick else root / "ensembles") / f"{name}.json"


def ensemble_results(inputs: EnsembleInputs, evaluation: dict, *, name: str, last_k: int | None, device,
                     clock: provenance.Clock) -> dict:
    """The results file's dict: the evaluation, members, data, cost and provenance."""
    views = views_per_image(inputs.tta)
    seconds = {n: {s: float(v) for s, v in sec.items()} for n, sec in inputs.seconds.items()}
    images = sum(inputs.data[s] for s in SPLITS)
    total = sum(sum(sec.values()) for sec in seconds.values())
    quick = any(m.is_quick for m in inputs.members)
    return {
        "ensemble": name,
        "kind": "ensemble",
        "members": [m.describe() for m in inputs.members],
        "last_k": last_k,
        "member_checkpoints": (f"mean softmax of the last {last_k} epoch checkpoints (DenseNet-CL §IV-C)" if last_k
                               else "best.pt: the epoch selected on PublicTest"),
        "tta": {"mode": inputs.tta, "views": views,
                "margin": {m.name: tencrop_margin(m.eval_transform) for m in inputs.members}
                if inputs.tta == "tencrop" else None},
        **evaluation,
        "selection": (f"weights fitted on {ens.FIT_SPLIT}; {ens.TEST_SPLIT} is reported, never used to fit"
                      if evaluation["method"] == "de" else "no fitted parameters; both splits are reported"),
        "profile": "quick" if quick else "real runs",
        "synthetic": inputs.data["synthetic"],
        "data": {**inputs.data, "eval_per_class": inputs.eval_per_class,
                 "subset_seed": 0 if inputs.eval_per_class else None},
        "cost": {"inference_seconds": seconds, "total_inference_seconds": total,
                 "forward_passes_per_image": views * sum(len(m.checkpoints) for m in inputs.members),
                 "images_per_s": images / total if total > 0 else None},
        "provenance": provenance.record(device, clock=clock, command=" ".join(sys.argv)),
    }


def run_ensemble(specs, *, method: str | None = None, tta: str = "none", last_k: int | None = None,
                 objective: str = "nll", seed: int = 0, dataset=None, data_dir=None, device=None,
                 eval_per_class: int | None = None, profile: str | None = None, name: str | None = None,
                 results_path: str | Path | None = None, out_dir: str | Path | None = None,
                 progress: bool = True, publish: bool = False) -> dict:
    """Load the members, predict, combine and write ``NAME.json``; returns the results dict (with ``path``).

    ``specs``: run folders or recipe names.  ``results_path`` (a file) or ``out_dir``
    (a folder for ``NAME.json``) override :func:`results_path_for`.  ``eval_per_class``: None chooses
    :func:`default_eval_per_class`.  ``dataset``: the data to evaluate on (default:
    :func:`~ferlib.data.discovery.load_fer2013` of ``data_dir``).
    """
    from ..train.build import resolve_device
    from ..train.recipes import ENSEMBLES

    clock = provenance.Clock()
    specs = [specs] if isinstance(specs, (str, Path)) else list(specs)
    recipe = ENSEMBLES.get(str(specs[0])) if len(specs) == 1 else None
    if recipe is not None:  # a paper's ensemble: its members and method (an explicit method still wins)
        specs, method, name = list(recipe.members), method or recipe.method, name or recipe.name
    method = method or "mean"
    if method not in ens.METHODS:
        raise EnsembleError(f"unknown ensemble method {method!r}; choose one of {', '.join(ens.METHODS)}")
    if tta not in TTA_MODES:
        raise EnsembleError(f"unknown test-time augmentation {tta!r}; choose one of {', '.join(TTA_MODES)}")
    if objective not in ens.OBJECTIVES:
        raise EnsembleError(f"unknown objective {objective!r}; choose one of {', '.join(ens.OBJECTIVES)}")
    members = [load_member(s, last_k=last_k, profile=profile) for s in specs]
    check_compatible(members)
    if dataset is None:
        from ..data.discovery import load_fer2013

        dataset = load_fer2013(data_dir, verbose=progress)
    device = resolve_device(device)
    if eval_per_class is None:
        eval_per_class = default_eval_per_class(members)
    inputs = collect_probabilities(members, dataset, tta=tta, eval_per_class=eval_per_class, device=device)
    evaluation = evaluate_ensemble(inputs, method, objective=objective, seed=seed)
    name = name or default_name(members, method, tta, last_k)
    results = ensemble_results(inputs, evaluation, name=name, last_k=last_k, device=device, clock=clock)
    if recipe is not None:
        results["ensemble_recipe"] = recipe.to_dict()  # the paper's row, numbers and weights (EmoNet Tables 1-2)
    if results_path is None:
        results_path = Path(out_dir) / f"{name}.json" if out_dir else results_path_for(name, members, published=publish)
    path = provenance.write_json(results, results_path)
    results["path"] = str(path)
    if progress:
        acc = {s: results["metrics"][s]["accuracy"] for s in SPLITS}
        best = results["best_member"]
        note = "  (SYNTHETIC data)" if inputs.data["synthetic"] else ""
        if results["profile"] == "quick":
            note += "  -- quick-profile members: a smoke test of the pipeline, not a result"
        weights = "" if results["weights"] is None else " weights " + ", ".join(f"{w:.3f}" for w in results["weights"])
        print(f"[ensemble {method}, tta {tta}{', last ' + str(last_k) if last_k else ''}]{weights}: "
              f"PublicTest {acc[ens.FIT_SPLIT]:.4f}, PrivateTest {acc[ens.TEST_SPLIT]:.4f}; best member "
              f"{best['name']} (on PublicTest) {best[ens.TEST_SPLIT]:.4f} on PrivateTest{note} -> {path}")
    return results
