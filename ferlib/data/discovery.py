"""Where the data is, decided in one place.

Order of precedence (the first that is given wins):

1. an explicit ``data_dir`` argument (``--data-dir`` on the CLI): a folder, or a file;
2. the environment variable ``FERLIB_DATA_DIR`` (a relative path from the current folder, else from the
   kit's root, so that one set in the kit's folder holds in a notebook's kernel too);
3. a ``data`` folder, if it exists: ``./data`` in the current folder, else ``data/`` in
   the kit's root folder (beside ``ferlib/`` in a checkout) -- notebooks run with
   ``notebooks/`` as their current folder, and still find the kit's ``data/``;
4. otherwise the embedded synthetic faces, with a visible notice.

If 1 or 2 is given but holds no FER-2013, that is an error that lists what was looked
for -- ferlib never silently swaps real data for synthetic.

Inside a data folder, FER-2013 is looked for as (first match wins)::

    fer2013.csv  fer2013/fer2013.csv  icml_face_data.csv  fer2013/icml_face_data.csv
    fer2013.npz.xz  fer2013/fer2013.npz.xz  train/+test/  fer2013/train/+fer2013/test/

and FER+ votes as ``fer2013new.csv`` or ``ferplus/fer2013new.csv``.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_path, load_cached, save_cached
from .dataset import FERDataset
from .errors import DataNotFoundError
from .readers import read_fer2013_csv, read_image_folder, read_npz_xz
from .. import paths

DATA_ENV = "FERLIB_DATA_DIR"

_FER_CANDIDATES = (
    ("fer2013.csv", "csv"), ("fer2013/fer2013.csv", "csv"),
    ("icml_face_data.csv", "csv"), ("fer2013/icml_face_data.csv", "csv"),
    ("fer2013.npz.xz", "npz.xz"), ("fer2013/fer2013.npz.xz", "npz.xz"),
    (".", "image-folder"), ("fer2013", "image-folder"),
)
_FERPLUS_CANDIDATES = ("fer2013new.csv", "ferplus/fer2013new.csv")

HOW_TO_GET_DATA = """\
How to get the real data:
  FER-2013: download fer2013.csv from Kaggle's "Challenges in Representation Learning: Facial
    Expression Recognition Challenge" (or the image-folder version with train/<class>/ and
    test/<class>/), and put it in ./data, or point FERLIB_DATA_DIR (or --data-dir) at its folder.
  FER+: download fer2013new.csv from github.com/microsoft/FERPlus and put it beside fer2013.csv."""


@dataclass(frozen=True)
class DataLocation:
    """What discovery found: the FER-2013 file or folder and its kind, FER+ votes, and why."""

    fer2013: Path | None
    kind: str  # "csv", "npz.xz", "image-folder" or "synthetic"
    ferplus: Path | None
    chosen_by: str  # "argument", "FERLIB_DATA_DIR", "./data" or "default"

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"




def default_data_dir() -> Path | None:
    """``./data`` if it is a folder, else the kit checkout's ``data/`` if that is; else None."""
    for cand in (Path("data"), paths.kit_root() / "data"):
        if cand.is_dir():
            return cand
    return None


def env_data_dir(value: str) -> Path:
    """``FERLIB_DATA_DIR`` as a folder: a relative path from the current folder, or else from the kit's root --
    set in the kit's folder (``FERLIB_DATA_DIR=../shared/data``), it still holds in a notebook's kernel, which
    starts in ``notebooks/`` (as :func:`default_data_dir` finds the kit's ``data/``)."""
    folder = Path(value).expanduser()
    if not folder.is_absolute() and not folder.exists() and (paths.kit_root() / folder).exists():
        return paths.kit_root() / folder
    return folder


def _find_in(folder: Path) -> tuple[Path | None, str]:
    if folder.is_file():
        name = folder.name.lower()
        if name.endswith(".npz.xz"):
            return folder, "npz.xz"
        if name.endswith(".csv"):
            return folder, "csv"
        return None, ""
    for rel, kind in _FER_CANDIDATES:
        p = folder / rel
        if kind == "image-folder":
            if (p / "train").is_dir() and (p / "test").is_dir():
                return p, kind
        elif p.is_file():
            return p, kind
    return None, ""


def _find_ferplus(folder: Path) -> Path | None:
    base = folder.parent if folder.is_file() else folder
    for rel in _FERPLUS_CANDIDATES:
        for root in (base, base.parent):
            if (root / rel).is_file():
                return root / rel
    return None


def locate_data(data_dir: str | Path | None = None) -> DataLocation:
    """Find FER-2013 and FER+ (see the module docstring for the order)."""
    if data_dir is not None:
        folder, chosen_by = Path(data_dir).expanduser(), "argument"
    elif os.environ.get(DATA_ENV):
        folder, chosen_by = env_data_dir(os.environ[DATA_ENV]), DATA_ENV
    elif default_data_dir() is not None:
        folder, chosen_by = default_data_dir(), "./data"
    else:
        return DataLocation(None, "synthetic", None, "default")
    if not folder.exists():
        where = (f" (a relative path is looked for from the current folder, {Path.cwd()}, and from the kit's root, "
                 f"{paths.kit_root()}: give an absolute path)" if chosen_by == DATA_ENV and not folder.is_absolute() else "")
        raise DataNotFoundError(f"{folder} (from {chosen_by}) does not exist{where}.\n{HOW_TO_GET_DATA}")
    found, kind = _find_in(folder)
    if found is None:
        if chosen_by == "./data":
            return DataLocation(None, "synthetic", _find_ferplus(folder), "default")
        looked = ", ".join(r if k != "image-folder" else f"{r}/train+test" for r, k in _FER_CANDIDATES)
        raise DataNotFoundError(f"no FER-2013 in {folder} (from {chosen_by}); looked for {looked}.\n"
                                f"{HOW_TO_GET_DATA}")
    return DataLocation(found, kind, _find_ferplus(folder), chosen_by)


def _notice(message: str, verbose: bool) -> None:
    if verbose:
        print(f"[ferlib] {message}", file=sys.stderr if not _in_notebook() else sys.stdout)


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def load_fer2013(data_dir: str | Path | None = None, *, use_cache: bool = True, verbose: bool = True,
                 synthetic_per_class: int = 1000) -> FERDataset:
    """Load FER-2013 from wherever :func:`locate_data` finds it, or the synthetic faces.

    Every form is parsed once and cached (see :mod:`ferlib.data.cache`; the
    notice says where the cache file is).
    A notice says which source was used.
    """
    loc = locate_data(data_dir)
    if loc.synthetic:
        from .synthetic import SYNTHETIC_NOTICE, make_synthetic_faces

        _notice(f"no FER-2013 found: using the embedded SYNTHETIC faces. {SYNTHETIC_NOTICE}\n"
                f"{HOW_TO_GET_DATA}", verbose)
        return make_synthetic_faces(n_per_class=synthetic_per_class)
    start = time.perf_counter()
    ds = load_cached(loc.fer2013) if use_cache else None
    how = f"loaded from cache {cache_path(loc.fer2013)}"
    if ds is None:
        reader = {"csv": read_fer2013_csv, "npz.xz": read_npz_xz, "image-folder": read_image_folder}[loc.kind]
        ds = reader(loc.fer2013)
        saved = save_cached(loc.fer2013, ds) if use_cache else None
        how = f"parsed; cached as {saved}" if saved else "parsed (not cached)"
    _notice(f"FER-2013 from {loc.fer2013} ({ds.format}, chosen by {loc.chosen_by}): {how} "
            f"in {time.perf_counter() - start:.1f} s", verbose)
    return ds
