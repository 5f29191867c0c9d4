"""``python -m ferlib frozen-features``: EmoNet's frozen phase on features computed once, for the four offline
rows and their DE-weighted ensemble (chapter 07, :mod:`ferlib.jobs.frozen_features`)."""
from __future__ import annotations

from ..jobs import frozen_features as ff
from .options import add_data_dir, add_profile, add_publish


def frozen_features_command(args) -> int:
    ff.run_frozen_features(args.rows, data_dir=args.data_dir, profile=args.profile, seeds=tuple(args.seeds),
                           epochs=args.epochs, publish=args.publish, out_dir=args.out, progress=not args.quiet)
    return 0


def add_command(sub) -> None:
    p = sub.add_parser("frozen-features", help="EmoNet's frozen phase with the block's features computed once: "
                                               "the offline EfficientNet-Lite0 rows and their DE ensemble (chapter 07)")
    p.add_argument("rows", nargs="*", metavar="RECIPE",
                   help=f"rows (default: all four, then their ensemble): {', '.join(ff.OFFLINE_ROWS)}")
    p.add_argument("--epochs", type=int, default=ff.HEAD_EPOCHS,
                   help=f"head epochs on the cached features (default {ff.HEAD_EPOCHS}; the best on PublicTest is kept)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(ff.SEEDS), help="one head per seed (default 0 1 2)")
    add_profile(p, "; quick: a small stratified subset of each split")
    add_data_dir(p)
    p.add_argument("--out", help="folder for the results files (default: results/local/frozen_features/)")
    add_publish(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=frozen_features_command)
