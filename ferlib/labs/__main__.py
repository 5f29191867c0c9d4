"""``python -m ferlib.labs sync | check | grade`` (see :mod:`ferlib.labs`)."""
from . import main

raise SystemExit(main())
