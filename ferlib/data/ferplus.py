"""FER+ crowd votes (Barsoum et al. 2016, ``fer2013new.csv``) and their label modes.

``fer2013new.csv`` has one line per FER-2013 row, **in the same row order** as
``fer2013.csv``: ``Usage, Image name, neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, NF`` -- ten taggers' votes per image.  Rows are
aligned by *row index*, never by ``Image name``: the name's number runs over the
named rows only and drifts from the row index, FER+ left the name empty for 173
rows (all of them NF = 10: FER+ dropped them), and four names are used twice.

Label modes
-----------
A port of the FER+ authors' reference code (microsoft/FERPlus ``src/ferplus.py``:
``FERPlusReader._process_data`` turns a row's votes into a target, ``_process_target``
turns that target into what the loss sees each time the image is drawn;
``src/train.py`` ``cost_func`` is the loss).  Barsoum et al. call the modes MV, PROB,
CEL and MT.  First, in every mode, **single votes are removed**: a column (any of the
ten, ``unknown`` and ``NF`` included) with one vote is set to 0, and "all votes"
below means the sum of what is left.

* ``majority`` (MV) -- one-hot of the top column if it holds **more than half** of all
  votes; otherwise (ties included: two tied top columns cannot each hold more than
  half) the row is *unknown*.
* ``probability`` (PROB) and ``crossentropy`` (CEL) -- the same vote distribution:
  take columns in decreasing vote order, tied columns together, until they cover 75%
  of all votes or 3 columns are taken.  Reaching ``unknown``/``NF`` stops the walk:
  it is left out if emotions were taken before it, else the row's target *is*
  unknown/NF.  The row is unknown if the kept votes are at most 50% of all votes or
  more than 3 columns were taken (a tie).  The two modes share the loss
  (cross-entropy against the target) and differ in the **target**: ``crossentropy``
  uses the distribution itself; ``probability`` draws a one-hot label from it anew
  every time the image is drawn (:func:`sample_one_hot`).
* ``multi_target`` (MT) -- every column with **at least 30% of all votes** (not of the
  top column's votes); the row is unknown if the kept votes are at most 50% of all.
  The loss only uses which classes were kept: ``-log max_j(mask_j * p_j)``, minus the
  log of the largest predicted probability among the kept classes, so the network may
  favour any one of them (:func:`training_targets`, :func:`ferplus_loss`).

A row whose target's argmax is ``unknown`` (8) or ``NF`` (9) -- with ``np.argmax``'s
first-of-ties rule -- is dropped; the kept rows lose the ``unknown``/``NF`` columns
and are renormalised over the 8 classes (in ``multi_target`` an unknown/NF column of
30% or more can sit beside a winning emotion and is removed here).  Rows with no
image name are dropped too (the reference never sees them: it has no image for
them).  **Evaluation is in majority mode**: the reference trains in any mode but reads
its validation and test folders in ``majority`` (:func:`ferplus_dataset`'s
``eval_mode``).  Class order is FER+'s 8 classes (``FERPLUS_CLASSES``, with
contempt); ``FERPLUS_TO_FER2013`` maps them to FER-2013.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import FERPLUS_CLASSES, FERPLUS_TO_FER2013, FERPLUS_VOTE_COLUMNS, SPLITS
from .dataset import FERDataset
from .errors import DataFormatError

# Rows whose FER+ image name is shared with a later row whose pixels differ (fer0006953.png:
# rows 5274 and 6968; fer0033120.png: rows 33200 and 34334).  FER+'s own image folders keep
# only the later row's image, so these rows' votes may describe the other image.  Pass these as
# ``exclude_rows`` to :func:`ferplus_dataset` for clean FER+ experiments.
FERPLUS_SUSPECT_ROWS = (5274, 33200)

LABEL_MODES = ("majority", "probability", "crossentropy", "multi_target")
_UNKNOWN, _NF = 8, 9


@dataclass(frozen=True)
class FERPlusVotes:
    """Raw FER+ votes, one row per FER-2013 row.

    votes : int (N, 10) in ``FERPLUS_VOTE_COLUMNS`` order
    usage : str (N,)
    image_names : str (N,), "" where FER+ dropped the row
    """

    votes: np.ndarray
    usage: np.ndarray
    image_names: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.votes)


def read_ferplus_votes(path: str | Path) -> FERPlusVotes:
    """Read ``fer2013new.csv`` with precise errors for bad rows."""
    path = Path(path)
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataFormatError(path, f"cannot open the file ({e.strerror})",
                              fix="download fer2013new.csv from github.com/microsoft/FERPlus") from e
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataFormatError(path, "the file is empty", where="line 1",
                                  fix="download fer2013new.csv again from github.com/microsoft/FERPlus")
        names = [h.strip() for h in header]
        expected = ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS]
        if names != expected:
            raise DataFormatError(path, f"header is {names}, expected {expected}", where="line 1 (header)",
                                  fix="this is not FER+'s fer2013new.csv; download it from github.com/microsoft/FERPlus")
        votes, usage, image_names = [], [], []
        for row, fields in enumerate(reader):
            where = f"row {row} (line {row + 2})"
            if len(fields) != len(expected):
                raise DataFormatError(path, f"{len(fields)} fields, expected {len(expected)}", where=where,
                                      fix="the row is cut or has extra commas; download the file again")
            if fields[0].strip() not in SPLITS:
                raise DataFormatError(path, f"Usage {fields[0]!r} is not one of {', '.join(SPLITS)}",
                                      where=where, fix="download fer2013new.csv again")
            try:
                v = [int(x) for x in fields[2:]]
            except ValueError:
                raise DataFormatError(path, f"non-integer vote in {fields[2:]}", where=where,
                                      fix="votes are counts 0..10; download the file again") from None
            votes.append(v)
            usage.append(fields[0].strip())
            image_names.append(fields[1].strip())
    return FERPlusVotes(np.array(votes, dtype=np.int64).reshape(-1, len(FERPLUS_VOTE_COLUMNS)),
                        np.array(usage), np.array(image_names), str(path))


def process_votes(raw: np.ndarray, mode: str) -> np.ndarray:
    """One row's 10 vote counts -> a target over the 10 columns (sums to 1), FER+ rules.

    A faithful port of microsoft/FERPlus ``_process_data`` (the rules are in the module
    docstring); the result's argmax is ``unknown`` (8) when the votes do not settle a
    label, and may be ``NF`` (9).  This is the *stored* target: in ``probability`` mode
    training draws a one-hot label from it (:func:`sample_one_hot`), in ``multi_target``
    mode the loss uses only its support (:func:`training_targets`).
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown FER+ label mode {mode!r}; expected one of {LABEL_MODES}")
    raw = np.asarray(raw)
    # outlier removal, in every column (unknown and NF too): a single vote is noise
    raw = np.where(raw <= 1, 0, raw).astype(np.float64)
    total = raw.sum()
    unknown = np.zeros(len(raw))
    unknown[_UNKNOWN] = 1.0
    if total == 0:  # nothing but single votes: every mode says unknown
        return unknown
    target = np.zeros(len(raw))
    if mode == "majority":
        top = raw.max()
        if top > 0.5 * total:  # strict: a tie for the top never passes
            target[int(np.argmax(raw))] = top
        else:
            return unknown
    elif mode in ("probability", "crossentropy"):
        work = raw.copy()
        part, count, valid = 0.0, 0, True
        while part < 0.75 * total and count < 3 and valid:
            top = work.max()
            for i in range(len(work)):  # all columns tied at ``top`` join together
                if work[i] == top:
                    target[i] = top
                    work[i] = 0
                    part += target[i]
                    count += 1
                    if i >= _UNKNOWN:  # unknown or NF reached: stop
                        valid = False
                        if target.sum() > top:  # emotions were taken before it: leave it out
                            target[i] = 0
                            count -= 1
                        break
        if target.sum() <= 0.5 * total or count > 3:  # too few votes covered, or a tie of too many
            return unknown
    else:  # multi_target
        keep = raw >= 0.3 * total  # 30% of ALL votes, not of the top column's
        target[keep] = raw[keep]
        if target.sum() <= 0.5 * total:
            return unknown
    return target / target.sum()


def sample_one_hot(targets, generator=None):
    """Draw one label per row from ``targets`` and return it one-hot: FER+'s ``probability`` mode.

    The reference (``_process_target``) replaces an image's vote distribution by a
    one-hot label drawn from it **every time the image enters a mini-batch**, so call
    this once per batch on the batch's soft targets (``FERPlusLabels.targets`` rows)::

        y = sample_one_hot(soft, generator=g)      # (B, C) one-hot, same device/dtype
        loss = ferplus_loss(logits, y, "probability")

    targets : float tensor (B, C), non-negative rows with a positive sum (they need
        not be normalised); any device.
    generator : a ``torch.Generator`` on the same device as ``targets`` (for a CUDA
        batch: ``torch.Generator(device="cuda").manual_seed(s)``), or None for the
        global generator.

    Vectorised inverse-CDF sampling (one uniform per row, ``searchsorted`` on the
    cumulative distribution), so it runs on the device with no per-sample loop; a class
    with probability 0 is never drawn.  Same generator state, same labels.
    """
    import torch

    p = targets.detach()
    if p.ndim != 2:
        raise ValueError(f"targets must be (batch, classes), got shape {tuple(p.shape)}")
    cdf = torch.cumsum(p.double(), dim=1)
    if bool((cdf[:, -1] <= 0).any()) or bool((p < 0).any()):
        raise ValueError("every target row needs non-negative entries and a positive sum")
    cdf = cdf / cdf[:, -1:]  # the last entry is exactly 1.0, and u < 1
    u = torch.rand(p.shape[0], 1, generator=generator, device=p.device, dtype=torch.float64)
    idx = torch.searchsorted(cdf, u, right=True).clamp_(max=p.shape[1] - 1)  # first class with cdf > u
    out = torch.zeros_like(targets)
    out.scatter_(1, idx, 1.0)
    return out


MULTI_TARGET_EPSILON = 0.001  # the reference's epsilon "to avoid ill-conditioned computation"


def training_targets(targets, mode: str, generator=None):
    """What the loss sees for a batch of stored targets, per mode (the reference's ``_process_target``).

    * ``majority``, ``crossentropy``: the targets unchanged (one-hot / the distribution);
    * ``probability``: a fresh one-hot draw per row (:func:`sample_one_hot`);
    * ``multi_target``: the mask of kept classes, ``(1 - eps) * [t > 0] + eps`` with
      ``eps = MULTI_TARGET_EPSILON``.
    """
    import torch

    if mode not in LABEL_MODES:
        raise ValueError(f"unknown FER+ label mode {mode!r}; expected one of {LABEL_MODES}")
    if mode == "probability":
        return sample_one_hot(targets, generator)
    if mode == "multi_target":
        mask = (targets > 0).to(targets.dtype)
        return (1 - MULTI_TARGET_EPSILON) * mask + MULTI_TARGET_EPSILON * torch.ones_like(mask)
    return targets


def ferplus_loss(logits, targets, mode: str):
    """The reference loss (``src/train.py``, ``cost_func``), mean over the batch.

    ``targets`` are :func:`training_targets`' output.  ``majority``, ``probability`` and
    ``crossentropy``: cross-entropy ``-sum_j t_j log p_j``; ``multi_target``:
    ``-log max_j (t_j p_j)``, with ``p = softmax(logits)``.
    """
    import torch

    if mode not in LABEL_MODES:
        raise ValueError(f"unknown FER+ label mode {mode!r}; expected one of {LABEL_MODES}")
    if mode == "multi_target":
        return -torch.log((targets * torch.softmax(logits, dim=1)).amax(dim=1)).mean()
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


@dataclass(frozen=True)
class FERPlusLabels:
    """FER+ targets aligned to FER-2013 rows.

    rows : int (M,), FER-2013 row indices kept (not-a-face and unknown rows dropped)
    targets : float (M, 8), the stored targets over ``FERPLUS_CLASSES`` (each sums to 1):
        one-hot in ``majority``, the vote distribution in ``probability`` /
        ``crossentropy``, the kept classes' vote shares in ``multi_target``
    labels : int (M,), argmax of ``targets`` (the majority class in ``majority`` mode)
    usage : str (M,)
    mode : the label mode
    """

    rows: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    mode: str
    class_names: tuple[str, ...] = FERPLUS_CLASSES


def ferplus_labels(votes: FERPlusVotes, mode: str = "majority") -> FERPlusLabels:
    """Targets of every usable row, every split, in one label mode (see the module docstring).

    Drops rows without an image name and rows whose target is unknown or NF, then
    removes the unknown/NF columns and renormalises.  For a training set in the
    reference's setting (evaluation in majority mode) use :func:`ferplus_dataset`.
    """
    keep, targets = [], []
    for r in range(len(votes)):
        if not votes.image_names[r]:
            continue
        t = process_votes(votes.votes[r], mode)
        if int(np.argmax(t)) >= _UNKNOWN:
            continue
        t = t[:_UNKNOWN]
        keep.append(r)
        targets.append(t / t.sum())
    rows = np.array(keep, dtype=np.int64)
    targets = np.array(targets, dtype=np.float32).reshape(-1, len(FERPLUS_CLASSES))
    return FERPlusLabels(rows=rows, targets=targets, labels=targets.argmax(1).astype(np.int64),
                         usage=votes.usage[rows], mode=mode)


def align_ferplus(dataset: FERDataset, votes: FERPlusVotes) -> FERDataset:
    """Check that FER+ votes describe ``dataset`` row for row; returns the dataset unchanged.

    FER+ is aligned by row index, so the dataset must be in ``fer2013.csv`` row order
    and have the same number of rows, and every row's Usage must agree.
    """
    src = Path(votes.source)
    if dataset.synthetic or dataset.format == "image-folder":
        raise DataFormatError(src, f"FER+ votes cannot be aligned to {dataset.tag}",
                              fix="FER+ rows follow fer2013.csv's row order: load fer2013.csv "
                                  "(or the lossless array file), not an image folder or synthetic faces")
    if len(votes) != len(dataset):
        raise DataFormatError(src, f"{len(votes)} rows of votes, but {dataset.source} has {len(dataset)} rows",
                              fix="FER+ is aligned to fer2013.csv by row index: both files must be the "
                                  "complete originals (35,887 rows)")
    mismatch = np.flatnonzero(votes.usage != dataset.usage[np.argsort(dataset.rows)])
    if len(mismatch):
        r = int(mismatch[0])
        raise DataFormatError(src, f"Usage {votes.usage[r]!r} but fer2013 says {dataset.usage[r]!r}",
                              where=f"row {r} (line {r + 2})",
                              fix="the two files are not in the same row order; use the unmodified originals")
    return dataset


def ferplus_dataset(dataset: FERDataset, votes: FERPlusVotes, mode: str = "majority",
                    exclude_rows: np.ndarray | None = None,
                    eval_mode: str | None = "majority") -> tuple[FERDataset, FERPlusLabels]:
    """FER-2013 images with FER+ labels: the rows FER+ keeps, 8 classes with contempt.

    Training rows follow ``mode``; PublicTest and PrivateTest rows follow ``eval_mode``,
    ``"majority"`` by default as in the reference, which trains in any mode but always
    validates and tests on majority-vote labels (so every mode is scored on the same
    images); ``eval_mode=None`` uses ``mode`` for every split.

    Returns ``(images, labels)``: ``images.labels`` are FER+ class indices (argmax),
    ``labels.targets`` the stored soft targets (turn them into per-batch training targets
    with :func:`training_targets`); ``labels.mode`` is ``mode``.
    """
    align_ferplus(dataset, votes)
    return _relabel(dataset, votes, mode, exclude_rows, eval_mode)


def _relabel(dataset: FERDataset, votes: FERPlusVotes, mode: str, exclude_rows, eval_mode,
             format_note: str = "FER+ labels") -> tuple[FERDataset, FERPlusLabels]:
    """:func:`ferplus_dataset` after the alignment check (the synthetic votes skip that check)."""
    labels = ferplus_labels(votes, mode)
    if eval_mode is not None and eval_mode != mode:
        ev = ferplus_labels(votes, eval_mode)
        tr, te = labels.usage == SPLITS[0], ev.usage != SPLITS[0]
        rows = np.concatenate([labels.rows[tr], ev.rows[te]])
        by_row = np.argsort(rows, kind="stable")
        cat = lambda a, b: np.concatenate([a[tr], b[te]])[by_row]  # noqa: E731
        labels = FERPlusLabels(rows[by_row], cat(labels.targets, ev.targets), cat(labels.labels, ev.labels),
                               cat(labels.usage, ev.usage), mode)
    if exclude_rows is not None:
        keep = ~np.isin(labels.rows, np.asarray(exclude_rows))
        labels = FERPlusLabels(labels.rows[keep], labels.targets[keep], labels.labels[keep],
                               labels.usage[keep], mode)
    order = np.argsort(dataset.rows)
    images = dataset.subset(order[labels.rows])
    from dataclasses import replace

    images = replace(images, labels=labels.labels, class_names=FERPLUS_CLASSES,
                     format=f"{dataset.format} + {format_note}")
    return images, labels


# -- the protocol of Sobel-Laplacian-CL (chapter 08) ---------------------------------------------------------
FERPLUS_PROTOCOL = (
    "FER+ majority-vote labels as Barsoum et al.'s reference code (microsoft/FERPlus) makes them: per row, "
    "single votes are removed (a column, unknown and NF included, with one vote is set to 0), then the row is "
    "kept when one column holds more than half of the remaining votes and that column is one of the 8 emotions "
    "(neutral, happiness, surprise, sadness, anger, disgust, fear, contempt: FER+'s order, the class index); "
    "rows whose winner is unknown or NF (not a face), ties, and rows without an image name are dropped; "
    "FER-2013's Training / PublicTest / PrivateTest are train / validation / test")


def synthetic_votes(dataset: FERDataset, seed: int = 0) -> FERPlusVotes:
    """Made-up FER+ votes for the **synthetic** faces, so chapter 08 and the FER+ recipes run without data.

    Ten votes per face, drawn from a per-face distribution around the face's own class
    (mapped to FER+'s order): about 60 % of the votes on average, the rest spread over the
    other columns, so some rows are ties or have no majority and are dropped, as in FER+.
    About 5 % of neutral and disgust faces become contempt (the synthetic faces have no
    contempt), about 2 % of all rows are not faces (NF) and 1 % have no image name (FER+'s
    dropped rows).  Rows follow ``dataset.rows`` (file order), Usage from the dataset.
    Every number computed from them is SYNTHETIC and says nothing about FER+.
    """
    from .classes import FER2013_TO_FERPLUS

    rng = np.random.default_rng([seed, 8])
    order = np.argsort(dataset.rows)
    labels, usage = np.asarray(dataset.labels)[order], np.asarray(dataset.usage)[order]
    n, k = len(labels), len(FERPLUS_VOTE_COLUMNS)
    own = np.array(FER2013_TO_FERPLUS)[labels]
    contempt = FERPLUS_CLASSES.index("contempt")
    turn = np.isin(own, [FERPLUS_CLASSES.index("neutral"), FERPLUS_CLASSES.index("disgust")]) & (rng.random(n) < 0.05)
    own = np.where(turn, contempt, own)
    alpha = np.full((n, k), 0.15)
    alpha[:, _UNKNOWN] = 0.05
    alpha[:, _NF] = 0.02
    alpha[np.arange(n), own] = 1.0 + 2.0 * rng.random(n)
    p = rng.gamma(alpha)
    p /= p.sum(1, keepdims=True)
    votes = np.stack([rng.multinomial(10, row) for row in p]).astype(np.int64)
    not_face = rng.random(n) < 0.02
    votes[not_face] = 0
    votes[not_face, _NF] = 10
    names = np.array([f"fer{i:07d}.png" for i in range(n)])
    names[not_face & (rng.random(n) < 0.5)] = ""
    return FERPlusVotes(votes, usage, names, "synthetic FER+ votes (made up for the synthetic faces)")


def majority_without_outlier_removal(votes: FERPlusVotes) -> np.ndarray:
    """The FER+ class per row by the paper's words alone -- "more than 50% of the votes going to one emotion"
    -- over **all** votes of the row (no single-vote removal); -1 where no emotion has them (or the row has
    no image name).  For comparison with the reference rule (:func:`process_votes`, ``majority``)."""
    v = np.asarray(votes.votes)
    top = v.argmax(1)
    keep = (v.max(1) > 0.5 * v.sum(1)) & (top < _UNKNOWN) & (np.asarray(votes.image_names) != "")
    return np.where(keep, top, -1)


def load_ferplus(data_dir=None, *, mode: str = "majority", exclude_rows=FERPLUS_SUSPECT_ROWS,
                 eval_mode: str | None = "majority", verbose: bool = True,
                 synthetic_per_class: int = 1000) -> tuple[FERDataset, FERPlusLabels]:
    """FER-2013's faces with FER+ labels, found where :func:`~ferlib.data.discovery.locate_data` looks.

    * FER-2013 and ``fer2013new.csv`` found: the real FER+ labels (:func:`ferplus_dataset`).
    * FER-2013 found without ``fer2013new.csv``: a :class:`~ferlib.data.errors.DataNotFoundError`
      that says where to get it (a model trained on FER+ needs the votes).
    * No FER-2013: the embedded **synthetic** faces with :func:`synthetic_votes` (SYNTHETIC).

    ``exclude_rows``: by default :data:`FERPLUS_SUSPECT_ROWS` (two rows whose votes may describe
    another image; README of the data).  Returns ``(images, labels)`` as :func:`ferplus_dataset`.
    """
    from .discovery import HOW_TO_GET_DATA, load_fer2013, locate_data
    from .errors import DataNotFoundError

    loc = locate_data(data_dir)
    if not loc.synthetic and loc.ferplus is None:  # said before the faces are loaded
        raise DataNotFoundError(f"FER-2013 is here ({loc.fer2013}) but not FER+'s votes (fer2013new.csv), which "
                                f"a FER+ recipe needs.\n{HOW_TO_GET_DATA}")
    dataset = load_fer2013(data_dir, verbose=verbose, synthetic_per_class=synthetic_per_class)
    if dataset.synthetic:
        votes = synthetic_votes(dataset)
        return _relabel(dataset, votes, mode, None, eval_mode, format_note="SYNTHETIC FER+ votes")
    return ferplus_dataset(dataset, read_ferplus_votes(loc.ferplus), mode, exclude_rows=exclude_rows,
                           eval_mode=eval_mode)


def image_name_numbers(votes: FERPlusVotes) -> np.ndarray:
    """The number in each row's ``Image name`` (``fer0000123.png`` -> 123), -1 where the name is empty.

    The numbers run over the named rows only, so they drift away from the row index
    (and a few are used twice): never align by them.
    """
    names = np.asarray(votes.image_names, dtype=str)
    named = names != ""
    digits = np.char.replace(np.char.replace(names, "fer", ""), ".png", "")
    out = np.full(len(names), -1, dtype=np.int64)
    bad = named & ~np.char.isdigit(digits)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataFormatError(Path(votes.source), f"Image name {names[r]!r} is not of the form ferNNNNNNN.png",
                              where=f"row {r} (line {r + 2})", fix="download fer2013new.csv again")
    out[named] = digits[named].astype(np.int64)
    return out


def plurality_agreement(dataset: FERDataset, votes: FERPlusVotes) -> dict[str, float]:
    """How often the FER+ plurality vote agrees with the FER-2013 label, under three alignments.

    The plurality vote of a row is its most-voted emotion (argmax over the 8 emotion
    columns, the first on ties), mapped to FER-2013 (contempt, which FER-2013 lacks,
    counts as a disagreement).  Over the named rows of the votes, it is compared with
    the FER-2013 label of

    * ``"row index"`` -- the same row of ``fer2013.csv``: the correct alignment;
    * ``"row index + 1"`` -- the next row: an alignment off by one;
    * ``"Image name"`` -- the row whose index is the number in ``Image name``.

    and ``"chance"``: the agreement of two *independent* labellings with the same class
    frequencies, ``sum_k p_k q_k``.  Returns ``{alignment or "chance": agreement}``: a
    misaligned FER+ does not fail, it agrees about as often as chance.  ``dataset`` must
    be the complete ``fer2013.csv`` (checked by :func:`align_ferplus`).
    """
    align_ferplus(dataset, votes)
    fer_labels = dataset.labels[np.argsort(dataset.rows)]  # file row order
    to_fer = np.array([-1 if c is None else c for c in FERPLUS_TO_FER2013])
    plurality = to_fer[votes.votes[:, :len(FERPLUS_CLASSES)].argmax(1)]
    named = votes.image_names != ""
    number = image_name_numbers(votes)
    by_name = named & (number >= 0) & (number < len(fer_labels))
    shifted = named[:-1]
    k = len(FERPLUS_TO_FER2013) - 1  # FER-2013's classes
    p = np.bincount(fer_labels[named], minlength=k) / named.sum()
    q = np.bincount(plurality[named & (plurality >= 0)], minlength=k) / named.sum()  # contempt: never agrees
    return {
        "row index": float((plurality[named] == fer_labels[named]).mean()),
        "row index + 1": float((plurality[:-1][shifted] == fer_labels[1:][shifted]).mean()),
        "Image name": float((plurality[by_name] == fer_labels[number[by_name]]).mean()),
        "chance": float(p @ q),
    }
