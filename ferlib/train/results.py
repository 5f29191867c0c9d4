"""Run a recipe end to end and record the result with its provenance.

``run_recipe`` loads the data, trains (resuming if a run was interrupted), selects
the epoch on PublicTest, evaluates PrivateTest, and writes ``RECIPE.json``:
metrics per split, per-class report, confusion matrix, selected epoch, checkpoint
ensemble, history, config, git sha, device, library versions, wall time and
training throughput.  Full-profile results go to ``results/``; quick-profile ones
to ``results/quick/`` so a laptop run never overwrites a GPU result.

Recipes read out by k-NN (DNNRL §4; ``recipe.classifier == "knn"``, or
``report_knn`` beside a softmax head) also get a ``knn`` block: the selected
checkpoint embeds the whole Training split, PublicTest and PrivateTest (evaluation
transform), k is chosen on PublicTest (:func:`ferlib.evaluate.knn.knn_evaluate`),
and the k, the PublicTest sweep over k and the metrics of both splits are written.
For ``classifier == "knn"`` those metrics are the recipe's ``metrics``; there is no
softmax, hence no checkpoint ensemble (``ensemble_last5`` is None).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from .. import provenance
from ..data.dataset import FERDataset
from ..data.splits import prepare_splits
from ..evaluate.ensemble import checkpoint_epoch, last_checkpoints, mean_softmax
from ..evaluate.knn import DEFAULT_KS, knn_evaluate
from ..evaluate.metrics import classification_metrics
from ..profiles import get_profile
from .build import build_run, resolve_device
from .checkpoint import load_checkpoint_dict
from .distributed import current as current_process_group
from .recipes import Recipe
from ..runs import BUDGET_PROFILE, RunKey
from .trainer import KEEP_LAST, train_images_per_s
from .validation import predict_embeddings

def evaluate_selected(run) -> dict:
    """Metrics of the epoch selected on PublicTest, and of the last-five checkpoint ensemble (DenseNet-CL §IV-C)."""
    t, names = run.trainer, run.data.class_names
    sources = {"PublicTest": t.val_source, "PrivateTest": run.test_source}
    best = load_checkpoint_dict(t.run_dir / "best.pt")
    files = last_checkpoints(t.run_dir, KEEP_LAST)
    dtype = torch.bfloat16 if t.precision == "bf16" else None
    probs = mean_softmax(t.model, [best["model"]], sources, autocast_dtype=dtype)
    labels = {k: s.labels.cpu().numpy() for k, s in sources.items()}
    out = {"selected_epoch": best["epoch"],
           "metrics": {k: classification_metrics(p, labels[k], names) for k, p in probs.items()}}
    ens = mean_softmax(t.model, [load_checkpoint_dict(f)["model"] for f in files], sources, autocast_dtype=dtype)
    out["ensemble_last5"] = {"epochs": [checkpoint_epoch(f) for f in files], "combine": "mean of softmax",
                             **{k: classification_metrics(p, labels[k], names)["accuracy"] for k, p in ens.items()}}
    t.model.load_state_dict(best["model"])
    return out


def load_selected(run) -> dict:
    """Load ``best.pt`` (the epoch selected on PublicTest) into the run's model; returns the checkpoint."""
    best = load_checkpoint_dict(run.trainer.run_dir / "best.pt")
    run.trainer.model.load_state_dict(best["model"])
    return best


def one_hot(predictions, num_classes: int):
    """(N,) class predictions as (N, C) one-hot scores, for :func:`classification_metrics`."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(predictions)]


def evaluate_knn(run, ks=DEFAULT_KS) -> dict:
    """DNNRL §4's readout with the model's current weights (the selected epoch after :func:`load_selected`).

    Embeds the whole Training split, PublicTest and PrivateTest (evaluation transform),
    chooses k among ``ks`` (those not above the Training size) on PublicTest and
    classifies PrivateTest with it.  Returns ``{"k", "metric", "sweep": {k: PublicTest
    accuracy}, "reference", "PublicTest": metrics, "PrivateTest": metrics}``.
    """
    t, names = run.trainer, run.data.class_names
    sources = {"Training": run.eval_source(run.data.train), "PublicTest": t.val_source, "PrivateTest": run.test_source}
    emb = {k: predict_embeddings(t.model, s, autocast_dtype=t.autocast_dtype) for k, s in sources.items()}
    n_train = emb["Training"][0].shape[0]
    usable = [k for k in ks if k <= n_train]
    if not usable:
        raise ValueError(f"every k in {tuple(ks)} exceeds the {n_train} Training embeddings")
    out = knn_evaluate(emb["Training"], emb["PublicTest"], emb["PrivateTest"], ks=usable,
                       metric=run.recipe.knn_metric, num_classes=len(names))
    metrics = {split: classification_metrics(one_hot(out["predictions"][split], len(names)),
                                             emb[split][1].numpy(), names) for split in ("PublicTest", "PrivateTest")}
    return {"k": out["k"], "metric": out["metric"], "sweep": {str(k): acc for k, acc in out["sweep"].items()},
            "selection": "k with the best PublicTest accuracy (the smallest on ties); PrivateTest classified once",
            "reference": {"split": "Training", "n": n_train, "transform": "evaluation (deterministic)"},
            **metrics}


def run_recipe(recipe: Recipe, *, dataset: FERDataset | None = None, profile: str | None = None,
               data_dir=None, device=None, seed: int = 0, results_path: str | Path | None = None,
               run_dir: str | Path | None = None, resume: bool = True, progress: bool = True,
               overwrite: bool = True, minutes: float | None = None, precision: str | None = "auto",
               **build_kwargs) -> dict:
    """Train ``recipe`` and write its results file; returns the results dict.

    ``minutes``: a wall-clock budget on the whole splits (see :mod:`ferlib.train.build`).
    Under torchrun (:mod:`ferlib.train.distributed`) every process trains; rank 0 alone
    prints, evaluates the selected epoch and writes the results file, and the other
    ranks return None once training ends.
    """
    group = current_process_group()
    progress = progress and (group is None or group.rank == 0)
    clock, code = provenance.Clock(), provenance.git_info()  # at the start: the code this run was started from
    profile, device = get_profile(profile), resolve_device(device)
    dataset = _dataset(recipe, dataset, data_dir, progress)
    dataset, face_filter = apply_face_filter(dataset, recipe.face_filter, progress)
    key = RunKey.for_training(recipe.name, profile, seed=seed, minutes=minutes, device=device,
                              synthetic=bool(dataset.synthetic))
    results_path = _writable(Path(results_path) if results_path else key.results_path(), overwrite)
    budget = recipe.budget(profile)  # a wall-clock budget trains and evaluates on the whole splits
    data = prepare_splits(dataset, None if minutes else budget.train_per_class,
                          None if minutes else budget.eval_per_class, seed)
    if face_filter:
        data.description["face_filter"] = face_filter
    run = build_run(recipe, data, profile=profile, seed=seed, device=device, precision=precision,
                    run_dir=Path(run_dir) if run_dir else key.run_dir(), minutes=minutes, progress=progress,
                    started=clock.started_wall, **build_kwargs)
    state = run.trainer.fit(resume=resume)  # resumes an interrupted run
    if group is not None and group.rank != 0:
        return None  # rank 0 evaluates and writes
    results = assemble_results(run, state, evaluate_final(run), profile=profile, minutes=minutes, seed=seed)
    results["provenance"] = provenance.record(device, code=code, clock=clock, command=" ".join(sys.argv),
                                              run_dir=str(run.trainer.run_dir), distributed=_distributed(run, group))
    provenance.write_json(results, results_path)
    if progress:
        print(summary_line(results, results_path))
    return results


def _dataset(recipe: Recipe, dataset, data_dir, progress: bool) -> FERDataset:
    """The recipe's data: ``dataset`` when given, else FER-2013 (``"fer2013"``) or its FER+ majority labels
    (``"ferplus"``, :func:`~ferlib.data.ferplus.load_ferplus`), as found by the data discovery."""
    if dataset is not None:
        return dataset
    if recipe.dataset == "fer2013":
        from ..data.discovery import load_fer2013

        return load_fer2013(data_dir, verbose=progress)
    if recipe.dataset == "ferplus":
        from ..data.ferplus import load_ferplus

        return load_ferplus(data_dir, verbose=progress)[0]
    raise NotImplementedError(f"recipe {recipe.name!r} needs dataset {recipe.dataset!r}")


def apply_face_filter(dataset: FERDataset, rule: str | None, progress: bool = True) -> tuple[FERDataset, dict | None]:
    """EmoNet §5's face filter on Training (``rule``: :data:`ferlib.features.face_filter.FILTER_RULES`; None: none).

    Both detectors' counts over the whole data set (computed once and cached, the counts chapter 01 shows);
    Training faces without exactly one face by ``rule`` are dropped, PublicTest and PrivateTest are kept whole
    (:func:`~ferlib.features.face_filter.training_keep_mask` says why).  Returns the data set and what was dropped.
    """
    if not rule:
        return dataset, None
    from ..features.face_filter import dataset_face_counts, training_keep_mask

    keep = training_keep_mask(dataset, dataset_face_counts(dataset, progress=progress), rule)
    info = {"rule": rule, "dropped_training_images": int((~keep).sum()), "split": "Training only"}
    if progress:
        print(f"[ferlib] face filter ({rule}): {info['dropped_training_images']} Training faces dropped "
              f"(PublicTest and PrivateTest kept whole)", flush=True)
    return dataset.subset(keep), info


def _writable(results_path: Path, overwrite: bool) -> Path:
    if results_path.exists() and not overwrite:
        raise FileExistsError(f"{results_path} exists; pass --overwrite to replace it or --out to write elsewhere")
    return results_path


def evaluate_final(run) -> dict:
    """The selected epoch's metrics (and the last-five ensemble) for a softmax head; the k-NN readout
    (k chosen on PublicTest) where the recipe uses one -- its metrics are the recipe's for ``classifier="knn"``."""
    recipe = run.recipe
    if recipe.classifier == "softmax":
        final = evaluate_selected(run)  # leaves the selected epoch's weights in the model
    else:
        final = {"selected_epoch": load_selected(run)["epoch"], "ensemble_last5": None}
    final["knn"] = evaluate_knn(run) if recipe.uses_knn else None
    if recipe.classifier == "knn":
        final["metrics"] = {split: final["knn"][split] for split in ("PublicTest", "PrivateTest")}
    return final


def assemble_results(run, state, final: dict, *, profile: str, minutes: float | None, seed: int) -> dict:
    """The results file's fields (provenance added by the caller): what ran, how it was selected, its numbers."""
    recipe, trainer = run.recipe, run.trainer
    world = trainer.comm.world_size
    images_per_s = train_images_per_s(state)  # this process's; every process trains as many (+-1 per epoch)
    selection = ("epoch with the lowest PublicTest validation loss" if trainer.select_on == "loss"
                 else "epoch with the best PublicTest accuracy")
    return {
        "recipe": recipe.name, "paper": recipe.paper, "row": recipe.row,
        "profile": BUDGET_PROFILE if minutes else profile,  # a budget run uses no profile's epochs or subsets
        "budget": ({"kind": "wall-clock", "minutes": minutes, "plan": state.plan} if minutes
                   else {"kind": "profile", "epochs": trainer.epochs}),
        "schedule": run.schedule_name,
        "precision": trainer.precision,
        "compiled": trainer.train_forward is not None,  # torch.compile of the training forward (--compile)
        "synthetic": run.data.synthetic,
        "data": run.data.description,
        "seed": seed,
        "selected_epoch": final["selected_epoch"],
        "selection": f"{selection}; PrivateTest is reported, never used to select",
        "classifier": recipe.classifier,
        "metrics": final["metrics"],
        "ensemble_last5": final["ensemble_last5"],
        "knn": final["knn"],
        "validation": trainer.validator.describe(),
        "protocol": ({"name": recipe.protocol, **state.callback_state.get(recipe.protocol, {})}
                     if recipe.protocol and not minutes else None),
        "paper_results": recipe.paper_results,
        "history": state.history,
        "epochs_run": state.epoch,
        "train_images_per_s": images_per_s and images_per_s * world,
        "train_seconds": state.train_seconds,
        "config": recipe.to_dict(),
        "model_weights": getattr(trainer.model, "weights_source", None),
        "model_weights_file": _weights_record(trainer.model),  # source, provider, file, sha256 (EmoNet's blocks)
        "augment": run.augment.to_dict(),
    }


def _weights_record(model) -> dict | None:
    record = getattr(model, "weights_record", None)
    return record.to_dict() if record is not None else None


def _distributed(run, group) -> dict:
    if group is None:
        return {"world_size": 1}
    batch = run.trainer.train_source.batch_size
    return {**group.describe(), "global_batch": batch, "per_process_batch": batch // group.world_size}


def summary_line(results: dict, results_path: Path) -> str:
    """``[recipe] selected epoch E: PublicTest a, PrivateTest b`` with what kind of run it was, and where it went."""
    m, knn = results["metrics"], results["knn"]
    note = "  (SYNTHETIC data)" if results["synthetic"] else ""
    if results["profile"] == "quick":
        note += "  -- quick profile: a smoke test of the pipeline, not a result"
    how = f" ({results['classifier']}{', k = ' + str(knn['k']) if results['classifier'] == 'knn' else ''})"
    return (f"[{results['recipe']}] selected epoch {results['selected_epoch']}{how}: PublicTest "
            f"{m['PublicTest']['accuracy']:.4f}, PrivateTest {m['PrivateTest']['accuracy']:.4f}{note} -> {results_path}")
