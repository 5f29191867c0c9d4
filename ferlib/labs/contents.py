"""JupyterLab's file browser without the jupytext twins: one entry per chapter.

Every chapter is a pair, ``03_center_loss.ipynb`` and its jupytext ``03_center_loss.py``
(the text that git reviews).  :class:`TwinHidingContentsManager` leaves a ``X.py`` out of a
folder's listing when ``X.ipynb`` sits beside it, so a student sees one entry per chapter;
the ``.py`` stays on disk, opens by path, and jupytext keeps it in sync when the notebook is
saved.  A ``.py`` without a notebook twin (all of ``ferlib/``) is listed as before.

Why not ``ContentsManager.hide_globs``: it matches a file's *name* only, so ``*.py`` would
hide ferlib's own sources too, and a name pattern cannot say "has a notebook twin".

``./kit lab`` loads it through ``jupyter_server_config.py`` at the kit's root
(``--config=jupyter_server_config.py``); jupytext's server extension then derives its own
contents manager from this one, so pairing works as before.
"""
from __future__ import annotations

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

__all__ = ["TwinHidingContentsManager", "hide_twins"]


def hide_twins(entries: list[dict]) -> list[dict]:
    """The directory entries without each ``X.py`` whose ``X.ipynb`` is among them."""
    notebooks = {e["name"][: -len(".ipynb")] for e in entries if e["name"].endswith(".ipynb")}
    return [e for e in entries if not (e["name"].endswith(".py") and e["name"][: -len(".py")] in notebooks)]


class TwinHidingContentsManager(AsyncLargeFileManager):
    """jupyter_server's default contents manager, minus the ``.py`` twins of notebooks in listings."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model.get("type") == "directory" and isinstance(model.get("content"), list):
            model["content"] = hide_twins(model["content"])
        return model
