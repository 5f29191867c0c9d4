"""``python -m ferlib data summary``: what ferlib finds (source, format, splits, classes, duplicates, FER+)."""
from __future__ import annotations

import json

from .options import add_data_dir


def data_summary(args) -> int:
    from ..data.discovery import load_fer2013, locate_data
    from ..data.ferplus import ferplus_labels, read_ferplus_votes, align_ferplus
    from ..data.quality import quality_report

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


def add_command(sub) -> None:
    data = sub.add_parser("data", help="inspect the data ferlib finds")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    summary = data_sub.add_parser("summary", help="source, format, split and class counts, duplicates")
    add_data_dir(summary)
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.set_defaults(func=data_summary)
