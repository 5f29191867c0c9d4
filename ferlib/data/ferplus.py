"""FER+ crowd votes (Barsoum et al. 2016, ``fer2013new.csv``) and their label modes.

``fer2013new.csv`` has one line per FER-2013 row, **in the same row order** as
``fer2013.csv``: ``Usage, Image name, neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, NF`` -- ten taggers' votes per image.  Rows are
aligned by *row index*, never by ``Image name``: FER+ left the name empty for the
177 rows it dropped, and file names differ between the FER+ PNGs and the Kaggle
image folders (see shared/data/README.md, "FER+ alignment check").

Label modes, as in microsoft/FERPlus ``src/ferplus.py`` (``_process_data``), after
removing single votes (a class with one vote is treated as noise):

* ``majority`` -- one-hot of the top class if it holds more than half the votes,
  else the row is *unknown* and dropped (the FER+ paper's "MV").
* ``probability`` -- the vote distribution over the up-to-3 top classes covering
  75% of votes (the paper's "PROB"); the target is a distribution.
* ``crossentropy`` -- the same target as ``probability``; the FER+ code differs only
  in the loss (cross-entropy with soft targets, "CEL").
* ``multi_target`` -- every class with at least 30% of the top class's votes, as a
  distribution; the FER+ loss accepts any of them ("MT").

Rows whose processed target is ``unknown`` or ``NF`` (not a face) are dropped, as
are rows with no votes or no image name.  Class order is FER+'s 8 classes
(``FERPLUS_CLASSES``, with contempt); ``FERPLUS_TO_FER2013`` maps them to FER-2013.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS, SPLITS
from .dataset import FERDataset
from .errors import DataFormatError

# Rows whose FER+ image name is shared with another row whose pixels differ: the votes may
# describe the other image (shared/data/README.md, "FER+ alignment").  Pass these as
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

    A faithful port of microsoft/FERPlus ``_process_data``; the result's argmax is
    ``unknown`` (8) when the votes do not settle a label.
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown FER+ label mode {mode!r}; expected one of {LABEL_MODES}")
    raw = np.where(raw <= 1, 0, raw).astype(np.float64)  # outlier removal: single votes are noise
    total = raw.sum()
    unknown = np.zeros(len(raw))
    unknown[_UNKNOWN] = 1.0
    if total == 0:
        return unknown
    target = np.zeros(len(raw))
    if mode == "majority":
        top = raw.max()
        if top > 0.5 * total:
            target[int(np.argmax(raw))] = top
        else:
            return unknown
    elif mode in ("probability", "crossentropy"):
        work = raw.copy()
        part, count, valid = 0.0, 0, True
        while part < 0.75 * total and count < 3 and valid:
            top = work.max()
            for i in range(len(work)):
                if work[i] == top:
                    target[i] = top
                    work[i] = 0
                    part += target[i]
                    count += 1
                    if i >= _UNKNOWN:  # unknown or NF tie with the top: stop
                        valid = False
                        if target.sum() > top:  # other emotions came first: drop the unknown/NF
                            target[i] = 0
                            count -= 1
                        break
        if target.sum() <= 0.5 * total or count > 3:
            return unknown
    else:  # multi_target
        top = raw.max()
        keep = raw >= 0.3 * top
        target[keep] = raw[keep]
        if target.sum() <= 0.5 * total:
            return unknown
    return target / target.sum()


@dataclass(frozen=True)
class FERPlusLabels:
    """FER+ targets aligned to FER-2013 rows.

    rows : int (M,), FER-2013 row indices kept (not-a-face and unknown rows dropped)
    targets : float (M, 8), distributions over ``FERPLUS_CLASSES``
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
    """Targets of every usable row in one label mode (see the module docstring)."""
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
                    exclude_rows: np.ndarray | None = None) -> tuple[FERDataset, FERPlusLabels]:
    """FER-2013 images with FER+ labels: the rows FER+ keeps, 8 classes with contempt.

    Returns ``(images, labels)``: ``images.labels`` are FER+ class indices (argmax),
    ``labels.targets`` the soft targets for the probability / cross-entropy / multi-target modes.
    """
    align_ferplus(dataset, votes)
    labels = ferplus_labels(votes, mode)
    if exclude_rows is not None:
        keep = ~np.isin(labels.rows, exclude_rows)
        labels = FERPlusLabels(labels.rows[keep], labels.targets[keep], labels.labels[keep],
                               labels.usage[keep], mode)
    order = np.argsort(dataset.rows)
    images = dataset.subset(order[labels.rows])
    from dataclasses import replace

    images = replace(images, labels=labels.labels, class_names=FERPLUS_CLASSES)
    return images, labels
