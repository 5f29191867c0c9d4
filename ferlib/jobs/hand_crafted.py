"""Chapter 01's floor: linear classifiers on hand-crafted features of FER-2013, one results file per row.

    python -m ferlib hand-crafted --profile full        # every feature set x both classifiers, all of FER-2013
    python -m ferlib hand-crafted --features emonet-bovw pixels --classifiers linear-svm   # quick: small subsets
    python -m ferlib face-filter                        # EmoNet's face filter: counts per split and class

**Rows.**  A row is a feature set (:data:`FEATURE_SETS`) and a classifier (:data:`CLASSIFIERS`),
each a scikit-learn pipeline that standardises the features (mean 0, variance 1 on Training)
before a linear model.  The features come from :mod:`ferlib.features`.

**The SVM's solver.**  scikit-learn's ``LinearSVC`` (liblinear) is the textbook choice, and far too
slow here: one fit of EmoNet's 2,592 HOG values took 182 s on 8,000 Training faces (dual
solver, C = 1e-3, 2 busy cores; logistic regression's L-BFGS took 26 s on the same data), and
the table needs 4 C values x 6 feature sets on 28,709 faces.  Each fit records whether its solver
converged (``grid[i].converged``).  The SVM rows therefore minimise the
same hinge-loss objective by averaged SGD (:func:`make_pipeline`), seeded, so a run is repeatable.

**Selection.**  The regularisation strength C of each row is chosen on **PublicTest** from
:data:`C_GRID` (each C fitted on Training alone); the chosen model's **PrivateTest** accuracy is
the row's result, with its binomial standard error.  The test split is never used to fit or
choose anything.

**Files.**  ``results/local/hand_crafted/FEATURE--CLASSIFIER.json`` (``--publish``: the kit's
tracked ``results/hand_crafted/``; quick profile: ``results/local/quick/hand_crafted/``), with
the C grid's PublicTest accuracies, metrics per split (per-class report, confusion matrix), the
PrivateTest predictions (chapter 01 shows the faces every row gets wrong), timings and
provenance.
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths, provenance
from ..data.classes import SPLITS
from ..errors import UsageError
from ..evaluate.metrics import accuracy_standard_error, classification_metrics
from ..profiles import get_profile
from ..runs import OWN_RESULTS

RESULTS_FOLDER = "hand_crafted"
FIT_SPLIT, SELECT_SPLIT, TEST_SPLIT = SPLITS  # Training, PublicTest, PrivateTest
C_GRID = (1e-3, 1e-2, 1e-1, 1.0)  # on standardised features; a row whose chosen C is at an end of the grid says so
PCA_VARIANCE = 0.95  # pca-pixels keeps the components that explain 95 % of Training's pixel variance
QUICK_PER_CLASS = {"Training": 120, "PublicTest": 40, "PrivateTest": 40}
MAX_ITER = 500  # L-BFGS iterations of the logistic regression at most
SGD_EPOCHS = 20  # passes of the SVM's SGD at most (it stops earlier when the objective stops improving)


@dataclass(frozen=True)
class FeatureSet:
    name: str
    description: str
    paper: str


FEATURE_SETS = {f.name: f for f in (
    FeatureSet("pixels", "the 2,304 grey values of the 48x48 face", "baseline"),
    FeatureSet("pca-pixels", f"principal components of the pixels keeping {PCA_VARIANCE:.0%} of Training's variance",
               "baseline (eigenfaces)"),
    FeatureSet("hog", "whole-face HOG: 8 orientations, 8x8-px cells, 2x2-cell blocks (L2-Hys): 800 values",
               "Dalal & Triggs"),
    FeatureSet("emonet-hog", "EmoNet's sliding-window HOG: 24-px windows every 6 px, 8x8-px cells, 8 orientations: "
               "2,592 values", "emonet §5"),
    FeatureSet("landmarks", "dlib's 68 facial landmarks, (x, y) each: 136 values", "emonet §5"),
    FeatureSet("emonet-bovw", "EmoNet's 2,728 vector: sliding-window HOG (2,592) + 68 landmarks (136)",
               "emonet §3.2, §5"),
)}
CLASSIFIERS = {
    "linear-svm": "linear SVM (hinge loss + L2, one-vs-rest; scikit-learn SGDClassifier, averaged, alpha = 1/(C n))",
    "logistic": "multinomial logistic regression (L-BFGS; scikit-learn LogisticRegression)",
}


def compute_features(name: str, dataset, *, progress: bool = False) -> np.ndarray:
    """The (N, D) float32 feature matrix of feature set ``name`` for every face of ``dataset``."""
    from .. import features

    faces = dataset.pixels
    if name in ("pixels", "pca-pixels"):
        return faces.reshape(len(faces), -1).astype(np.float32)
    if name == "hog":
        return features.whole_face_hog(faces).astype(np.float32)
    if name == "emonet-hog":
        return features.sliding_window_hog(faces).astype(np.float32)
    if name == "landmarks":
        return features.dataset_landmarks(dataset, progress=progress).reshape(len(faces), -1)
    if name == "emonet-bovw":
        return features.emonet_bovw_features(faces, features.dataset_landmarks(dataset, progress=progress))
    raise UsageError(f"unknown feature set {name!r}", f"choose from {', '.join(FEATURE_SETS)}")


def make_pipeline(feature: str, classifier: str, C: float, n_train: int, seed: int = 0):
    """Standardise (after PCA for ``pca-pixels``), then the linear classifier with strength ``C``.

    The SVM minimises the soft-margin objective  ||w||^2 / 2 + C * sum_i hinge_i  (per class,
    one-vs-rest) by averaged SGD: scikit-learn's ``SGDClassifier`` minimises
    alpha/2 ||w||^2 + mean_i hinge_i, the same objective divided by C n for alpha = 1 / (C n).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.pipeline import make_pipeline as sk_pipeline
    from sklearn.preprocessing import StandardScaler

    if classifier == "linear-svm":
        model = SGDClassifier(loss="hinge", alpha=1.0 / (C * n_train), average=True, max_iter=SGD_EPOCHS,
                              tol=1e-3, random_state=seed)
    elif classifier == "logistic":
        model = LogisticRegression(C=C, max_iter=MAX_ITER, random_state=seed)
    else:
        raise UsageError(f"unknown classifier {classifier!r}", f"choose from {', '.join(CLASSIFIERS)}")
    steps = [PCA(n_components=PCA_VARIANCE, svd_solver="full", random_state=seed)] if feature == "pca-pixels" else []
    return sk_pipeline(*steps, StandardScaler(), model)


def scores_of(pipeline, X: np.ndarray) -> np.ndarray:
    """Class scores (N, K): probabilities for logistic regression, decision values for the SVM."""
    model = pipeline[-1]
    return pipeline.predict_proba(X) if hasattr(model, "predict_proba") else pipeline.decision_function(X)


def fit_row(feature: str, classifier: str, X: dict, y: dict, *, c_grid=C_GRID, seed: int = 0) -> dict:
    """Fit one C per grid value on Training, choose on PublicTest, score every split with the chosen one."""
    from sklearn.exceptions import ConvergenceWarning

    grid = []
    best = None
    for C in c_grid:
        t = time.perf_counter()
        pipe = make_pipeline(feature, classifier, C, len(y[FIT_SPLIT]), seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            pipe.fit(X[FIT_SPLIT], y[FIT_SPLIT])
        acc = float((pipe.predict(X[SELECT_SPLIT]) == y[SELECT_SPLIT]).mean())
        grid.append({"C": C, SELECT_SPLIT: acc, "fit_seconds": time.perf_counter() - t,
                     "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught)})
        if best is None or acc > best[0]:
            best = (acc, C, pipe)
    return {"grid": grid, "chosen_C": best[1], "pipeline": best[2]}


def results_dir_for(*, quick: bool, published: bool) -> Path:
    if published and quick:
        raise UsageError("--publish writes the kit's tracked results, and a quick-profile (or synthetic) row is a "
                         "smoke test, not a result", "drop --publish, or run on FER-2013 with --profile full "
                         "(the whole data set; the default profile is quick)")
    root = paths.results_dir() if published else paths.results_dir() / OWN_RESULTS
    return root / "quick" / RESULTS_FOLDER if quick else root / RESULTS_FOLDER


def row_name(feature: str, classifier: str, face_filter: str | None = None) -> str:
    return f"{feature}--{classifier}" + (f"--face-filter-{face_filter}" if face_filter else "")


def prepare_data(dataset=None, *, data_dir=None, profile: str | None = None, face_filter: str | None = None,
                 progress: bool = True):
    """The data set a run uses (quick: a stratified subset of each split) and what the results say about it."""
    from ..data.dataset import stratified_subset
    from ..data.discovery import load_fer2013

    if dataset is None:
        dataset = load_fer2013(data_dir, verbose=progress)
    quick = get_profile(profile) == "quick" or dataset.synthetic
    if quick:
        parts = [np.flatnonzero(dataset.usage == s) for s in SPLITS]
        keep = []
        for split, idx in zip(SPLITS, parts):
            sub = stratified_subset(dataset.subset(idx), QUICK_PER_CLASS[split], seed=0)
            keep.append(idx[np.isin(dataset.rows[idx], sub.rows)])
        dataset = dataset.subset(np.sort(np.concatenate(keep)))
    info = {"source": str(dataset.source), "format": dataset.format, "synthetic": bool(dataset.synthetic),
            "quick": quick, "per_class": QUICK_PER_CLASS if quick else None}
    if face_filter:
        from ..features.face_filter import dataset_face_counts, training_keep_mask

        keep = training_keep_mask(dataset, dataset_face_counts(dataset, progress=progress), face_filter)
        info["face_filter"] = {"rule": face_filter, "dropped_training_images": int((~keep).sum())}
        dataset = dataset.subset(keep)
    info["images"] = {s: int((dataset.usage == s).sum()) for s in SPLITS}
    return dataset, info


def run_hand_crafted(features=None, classifiers=None, *, dataset=None, data_dir=None, profile: str | None = None,
                     face_filter: str | None = None, c_grid=C_GRID, seed: int = 0, publish: bool = False,
                     out_dir: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Every (feature set, classifier) row: fit, select C on PublicTest, report PrivateTest, write its file.

    Returns the results dicts (each with ``path``).  Each feature set is computed once for all its rows.
    """
    import torch

    features = list(features or FEATURE_SETS)
    classifiers = list(classifiers or CLASSIFIERS)
    for f in features:
        if f not in FEATURE_SETS:
            raise UsageError(f"unknown feature set {f!r}", f"choose from {', '.join(FEATURE_SETS)}")
    for c in classifiers:
        if c not in CLASSIFIERS:
            raise UsageError(f"unknown classifier {c!r}", f"choose from {', '.join(CLASSIFIERS)}")
    if not c_grid or any(not (C > 0) for C in c_grid):
        raise UsageError(f"every C must be a positive number, got {list(c_grid)}")
    code = provenance.git_info()
    dataset, info = prepare_data(dataset, data_dir=data_dir, profile=profile, face_filter=face_filter,
                                 progress=progress)
    folder = Path(out_dir) if out_dir else results_dir_for(quick=info["quick"], published=publish)
    y = {s: dataset.labels[dataset.usage == s] for s in SPLITS}
    out = []
    for feature in features:
        t = time.perf_counter()
        X_all = compute_features(feature, dataset, progress=progress)
        feature_seconds = time.perf_counter() - t
        X = {s: X_all[dataset.usage == s] for s in SPLITS}
        for classifier in classifiers:
            clock = provenance.Clock()
            row = fit_row(feature, classifier, X, y, c_grid=c_grid, seed=seed)
            pipe = row.pop("pipeline")
            row["chosen_C_at_grid_end"] = len(c_grid) > 1 and row["chosen_C"] in (min(c_grid), max(c_grid))
            metrics = {s: classification_metrics(scores_of(pipe, X[s]), y[s], dataset.class_names) for s in SPLITS}
            acc = metrics[TEST_SPLIT]["accuracy"]
            n = metrics[TEST_SPLIT]["n"]
            results = {
                "kind": "hand-crafted",
                "row": row_name(feature, classifier, face_filter),
                "feature_set": feature, "feature_description": FEATURE_SETS[feature].description,
                "feature_source": FEATURE_SETS[feature].paper, "dimensions": int(X_all.shape[1]),
                "classifier": classifier, "classifier_description": CLASSIFIERS[classifier],
                "pipeline": [type(step).__name__ for step in pipe],
                "pca_components": int(pipe[0].n_components_) if feature == "pca-pixels" else None,
                **row,
                "selection": f"C chosen on {SELECT_SPLIT} (each C fitted on {FIT_SPLIT} alone); "
                             f"{TEST_SPLIT} is reported, never used to fit or choose",
                "metrics": metrics,
                "test_accuracy": acc, "test_standard_error": accuracy_standard_error(acc, n),
                "test_predictions": pipe.predict(X[TEST_SPLIT]).astype(int).tolist(),
                "test_rows": dataset.rows[dataset.usage == TEST_SPLIT].astype(int).tolist(),
                "class_names": list(dataset.class_names),
                "data": info, "profile": "quick" if info["quick"] else "real data",
                "cost": {"feature_seconds_all_splits": feature_seconds,
                         "fit_seconds_total": sum(g["fit_seconds"] for g in row["grid"])},
                "provenance": provenance.record(torch.device("cpu"), code=code, clock=clock,
                                                command=" ".join(sys.argv)),
            }
            path = provenance.write_json(results, folder / f"{results['row']}.json")
            results["path"] = str(path)
            out.append(results)
            if progress:
                note = "  (SYNTHETIC faces: a smoke test)" if info["synthetic"] else (
                    "  (quick profile: a smoke test)" if info["quick"] else "")
                print(f"[hand-crafted] {results['row']}: {results['dimensions']} values, C={row['chosen_C']:g} "
                      f"(PublicTest {metrics[SELECT_SPLIT]['accuracy']:.4f}), PrivateTest {acc:.4f} "
                      f"+- {results['test_standard_error']:.4f}{note} -> {path}", flush=True)
    return out


def run_face_filter_counts(*, dataset=None, data_dir=None, publish: bool = False, out_dir=None,
                           progress: bool = True) -> dict:
    """Both detectors over every face (cached), the table per split and class, written as ``face_filter.json``."""
    import torch

    from ..data.discovery import load_fer2013
    from ..features import face_filter as ff

    clock = provenance.Clock()
    if dataset is None:
        dataset = load_fer2013(data_dir, verbose=progress)
    counts = ff.dataset_face_counts(dataset, progress=progress)
    table = ff.face_filter_table(dataset, counts)
    results = {
        "kind": "face-filter",
        "method": {"upscale": ff.UPSCALE, "border_px": ff.BORDER, "canvas_grey": ff.CANVAS_GREY,
                   "opencv": {"cascade": ff.HAAR_CASCADE, **{k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in ff.HAAR_SETTINGS.items()}},
                   "dlib": "get_frontal_face_detector(), no extra upsampling",
                   "keep": "exactly one face; only Training is filtered"},
        "per_split_and_class": table,
        "totals": {split: {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values()))}
                   for split, rows in table.items()},
        "face_count_histogram": {d: np.bincount(np.minimum(counts[d], 3), minlength=4).tolist() for d in ff.DETECTORS},
        "synthetic": bool(dataset.synthetic),
        "data": {"source": str(dataset.source), "format": dataset.format, "images": len(dataset)},
        "provenance": provenance.record(torch.device("cpu"), clock=clock, command=" ".join(sys.argv)),
    }
    folder = Path(out_dir) if out_dir else results_dir_for(quick=dataset.synthetic, published=publish)
    path = provenance.write_json(results, folder / "face_filter.json")
    results["path"] = str(path)
    if progress:
        tot = results["totals"]
        line = "; ".join(f"{s}: {t['images']} images, dropped by both-rule {t['dropped_by_both']}" for s, t in tot.items())
        print(f"[face-filter] {line} -> {path}")
    return results
