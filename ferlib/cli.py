"""Command line: python -m ferlib ...

    python -m ferlib data summary [--data-dir DIR] [--json]
    python -m ferlib recipes
    python -m ferlib train RECIPE [--profile quick|full] [--minutes M] [--compile] [--data-dir DIR] [--device D] [--seed S]
    python -m ferlib predict PHOTO... [--model CHECKPOINT] [--json] [--out ANNOTATED.png]
    python -m ferlib ensemble RUN_OR_RECIPE... [--method mean|vote|de] [--tta none|flip|tencrop] [--last-k K]
    python -m ferlib reproduce PAPER_OR_RECIPE... [--workers N] [--minutes M] [--dry-run] [--overwrite]
    python -m ferlib export RUN_OR_CHECKPOINT OUT.pt [--check-split PrivateTest]
    torchrun --nproc-per-node N -m ferlib train RECIPE ...   (DistributedDataParallel, see README)

A mistake (an unknown recipe or profile, a device that is not there, bad data) exits
with status 2 and one message saying what is wrong and how to fix it; --debug shows
the traceback as well.  Ctrl-C during training saves a checkpoint and exits with 130.
"""
from __future__ import annotations

import argparse
import json
import sys

from .data.errors import DataFormatError, DataNotFoundError
from .errors import UsageError
from .train.callbacks import TrainingInterrupted

USER_ERRORS = (UsageError, DataFormatError, DataNotFoundError)


def _data_summary(args) -> int:
    from .data.discovery import load_fer2013, locate_data
    from .data.ferplus import ferplus_labels, read_ferplus_votes, align_ferplus
    from .data.quality import quality_report

    loc = locate_data(args.data_dir)
    ds = load_fer2013(args.data_dir, verbose=not args.json)
    report = quality_report(ds)
    summary = {
        "source": ds.source,
        "format": ds.format,
        "synthetic": ds.synthetic,
        "chosen_by": loc.chosen_by,
        "rows": len(ds),
        "splits": ds.split_counts(),
        "classes": {s: ds.class_counts(s) for s in ds.split_counts()},
        "exact_duplicates": report.as_dict(),
        "ferplus": None,
    }
    if loc.ferplus is not None and not ds.synthetic:
        votes = read_ferplus_votes(loc.ferplus)
        align_ferplus(ds, votes)
        major = ferplus_labels(votes, "majority")
        summary["ferplus"] = {"source": str(loc.ferplus), "rows": len(votes),
                              "majority_rows": {s: int((major.usage == s).sum()) for s in ds.split_counts()}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"source : {summary['source']}  ({summary['format']}, chosen by {summary['chosen_by']})")
    if ds.synthetic:
        print("         SYNTHETIC faces: numbers on them say nothing about FER-2013")
    print(f"rows   : {len(ds):,}")
    names = ds.class_names
    print(f"{'split':<12}{'rows':>7}  " + " ".join(f"{n[:8]:>8}" for n in names))
    for split, n in summary["splits"].items():
        counts = summary["classes"][split]
        print(f"{split:<12}{n:>7}  " + " ".join(f"{counts[c]:>8}" for c in names))
    r = report
    print(f"exact duplicates: {r.duplicate_groups} groups, {r.duplicate_rows} rows, {r.distinct_images} distinct images; "
          f"{r.test_rows_in_training} test rows also in Training; {r.conflicting_groups} groups with conflicting labels; "
          f"{r.blank_images} blank images")
    if summary["ferplus"]:
        fp = summary["ferplus"]
        print(f"FER+   : {fp['source']} ({fp['rows']:,} rows); majority-vote rows per split {fp['majority_rows']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="inspect the data ferlib finds")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    summary = data_sub.add_parser("summary", help="source, format, split and class counts, duplicates")
    summary.add_argument("--data-dir", help="folder or file with FER-2013 (default: $FERLIB_DATA_DIR, ./data, synthetic)")
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.set_defaults(func=_data_summary)
    from .predict import add_predict_command
    from .train.cli import add_train_commands

    add_train_commands(sub)
    add_predict_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return args.func(args)
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:  # Ctrl-C: the checkpoint is saved; one line says where and how to go on
        if args.debug:
            raise
        print(f"[ferlib] {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # Ctrl-C outside a training step (training itself stops with TrainingInterrupted)
        print("interrupted; a training run resumes from its last checkpoint when the same command runs again",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m ferlib recipes | head`
        sys.stderr.close()
        return 0
