"""The two run profiles, chosen by one switch.

* ``quick`` -- the default: small subsets or the synthetic faces, one or two epochs,
  seconds per notebook cell on a laptop CPU.  CI runs everything in this profile.
* ``full`` -- the papers' budgets on FER-2013 / FER+, meant for a GPU.

The switch is the ``profile`` argument where a function takes one, else the
environment variable ``FERLIB_PROFILE``, else ``quick``.  ``full`` is never chosen
implicitly (not even on a GPU): hours of training should be asked for, not stumbled
into by running a notebook top to bottom.
"""
from __future__ import annotations

import os

PROFILE_ENV = "FERLIB_PROFILE"
PROFILES = ("quick", "full")


def get_profile(profile: str | None = None) -> str:
    """The profile in force: the argument, else ``$FERLIB_PROFILE``, else ``"quick"``."""
    name = profile or os.environ.get(PROFILE_ENV) or "quick"
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {'argument' if profile else PROFILE_ENV}); "
                         f"expected one of {PROFILES}")
    return name
