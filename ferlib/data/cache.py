"""A cache of parsed arrays, so the 300 MB CSV is parsed once.

Parsed datasets are saved as an uncompressed ``.npz`` under the cache folder --
``$FERLIB_CACHE_DIR`` if set, else ``~/.cache/ferlib`` -- never in the user's data
folder.  The key is the source's absolute path, size and modification time, so an
edited or replaced file is parsed again.  Loading a cached FER-2013 takes well under
a second (83 MB of uint8).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .dataset import FERDataset

CACHE_ENV = "FERLIB_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ferlib")


def _fingerprint(source: Path) -> str:
    source = source.resolve()
    files = sorted(source.rglob("*")) if source.is_dir() else [source]
    h = hashlib.sha1(str(source).encode())
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(source.parent)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cache_path(source: Path) -> Path:
    return cache_dir() / f"{source.name}-{_fingerprint(source)}.npz"


def load_cached(source: Path) -> FERDataset | None:
    path = cache_path(source)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return FERDataset(pixels=z["pixels"], labels=z["labels"], usage=z["usage"].astype(str),
                              rows=z["rows"], source=str(source), format=str(z["format"]))
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is simply rebuilt


def save_cached(source: Path, ds: FERDataset) -> Path | None:
    """Write the cache entry atomically; returns its path, or None if the folder is not writable."""
    return save_arrays(cache_path(source), pixels=ds.pixels, labels=ds.labels, usage=ds.usage, rows=ds.rows,
                       format=np.array(ds.format))


def load_arrays(path: Path, names) -> dict[str, np.ndarray] | None:
    """The named arrays of a cache entry (``.npz``), or None when it is missing or damaged (then recomputed)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return {name: z[name] for name in names}
    except (OSError, ValueError, KeyError):
        return None


def save_arrays(path: Path, **arrays) -> Path | None:
    """Write a cache entry atomically (a temporary file, then a rename); None if the folder is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path
    except OSError:
        return None
