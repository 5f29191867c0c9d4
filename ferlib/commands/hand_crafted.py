"""``python -m ferlib hand-crafted`` and ``python -m ferlib face-filter``: chapter 01's floor
(:mod:`ferlib.jobs.hand_crafted`)."""
from __future__ import annotations

import argparse

from ..features.face_filter import FILTER_RULES
from ..jobs import hand_crafted as hc
from .options import add_data_dir, add_profile, add_publish, add_seed


def hand_crafted_command(args) -> int:
    hc.run_hand_crafted(args.features, args.classifiers, data_dir=args.data_dir, profile=args.profile,
                        face_filter=args.face_filter, c_grid=args.C or hc.C_GRID, seed=args.seed,
                        publish=args.publish, out_dir=args.out, progress=not args.quiet)
    return 0


def face_filter_command(args) -> int:
    hc.run_face_filter_counts(data_dir=args.data_dir, publish=args.publish, out_dir=args.out,
                              progress=not args.quiet)
    return 0


def positive_float(text: str) -> float:
    """A value of ``--C``; argparse prints the message of an ``ArgumentTypeError`` (and exits with status 2)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--C takes positive numbers, got {text!r}")
    return value


def add_commands(sub) -> None:
    h = sub.add_parser("hand-crafted", help="linear classifiers on HOG, landmarks, EmoNet's 2,728 vector and pixels "
                                            "(chapter 01); C chosen on PublicTest, PrivateTest reported")
    h.add_argument("--features", nargs="+", metavar="FEATURE", choices=list(hc.FEATURE_SETS),
                   help=f"feature sets (default: all): {', '.join(hc.FEATURE_SETS)}")
    h.add_argument("--classifiers", nargs="+", metavar="CLASSIFIER", choices=list(hc.CLASSIFIERS),
                   help=f"classifiers (default: all): {', '.join(hc.CLASSIFIERS)}")
    h.add_argument("--C", nargs="+", type=positive_float, metavar="C",
                   help=f"the grid of C searched on PublicTest (default: {' '.join(f'{c:g}' for c in hc.C_GRID)})")
    h.add_argument("--face-filter", choices=FILTER_RULES,
                   help="drop Training images in which the detector(s) do not find exactly one face "
                        "(EmoNet §5; never the test splits)")
    add_profile(h, "; quick: a small stratified subset of each split")
    add_data_dir(h)
    add_seed(h)
    h.add_argument("--out", help="folder for the results files (default: results/local/hand_crafted/)")
    add_publish(h)
    h.add_argument("--quiet", action="store_true")
    h.set_defaults(func=hand_crafted_command)

    f = sub.add_parser("face-filter", help="count the faces OpenCV and dlib find in every FER-2013 image "
                                           "(EmoNet's filter), per split and class")
    add_data_dir(f)
    f.add_argument("--out", help="folder for face_filter.json (default: results/local/hand_crafted/)")
    add_publish(f)
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=face_filter_command)
