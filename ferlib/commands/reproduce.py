"""``python -m ferlib reproduce TARGET...``: a paper's table rows in one call (:mod:`ferlib.jobs.reproduce`)."""
from __future__ import annotations

import signal
import sys

from .. import provenance
from ..errors import UsageError
from ..jobs.reproduce import (BUDGET_EXIT, CONTINUE, INTERRUPT_EXIT, CodeVersion, GpuUtilisation, RowPool,
                              cpu_cores, default_workers, dry_run, expand_targets, plan_rows, print_table,
                              row_summary, summary_path, worker_command, worker_env)
from .options import (add_data_dir, add_device, add_precision, add_profile, add_publish, add_seed, parse_device,
                      parse_minutes, user_choice)


def reproduce_command(args) -> int:
    from ..data.discovery import locate_data
    from ..profiles import get_profile
    from ..train.precision import resolve_precision

    recipes = expand_targets(args.targets)
    profile = user_choice(get_profile, args.profile)
    device = parse_device(args.device)
    precision = user_choice(resolve_precision, args.precision, device)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}",
                         "give the number of rows to train at once on the device, e.g. --workers 2")
    parse_minutes(args.minutes)
    if args.publish and profile == "quick":
        raise UsageError("--publish writes the kit's tracked results, and the quick profile is a smoke test",
                         "drop --publish, or use --profile full")
    synthetic = locate_data(args.data_dir).synthetic
    code = CodeVersion.here()
    rows = plan_rows(recipes, profile=profile, device=device, seed=args.seed, overwrite=args.overwrite,
                     synthetic=synthetic, code=code, publish=args.publish)
    to_run = [r for r in rows if r.action == "run"]
    workers = args.workers or default_workers(device, len(to_run))
    threads = max(1, cpu_cores() // max(1, min(workers, len(to_run))))  # the cores shared by the rows running at once
    if args.dry_run:
        return dry_run(rows, profile=profile, device=device, precision=precision, seed=args.seed,
                       data_dir=args.data_dir, workers=workers, minutes=args.minutes, quiet=args.quiet)

    clock = provenance.Clock()
    code_version = provenance.git_info()  # at the start, as train records it: the code the rows were started from
    gpu = GpuUtilisation(device)
    for row in rows:
        if row.action == "skip":
            print(f"[reproduce] skip {row.recipe.name}: results for this code version in {row.results_path}")
        elif row.action == "keep":
            print(f"[reproduce] stale {row.recipe.name}: {row.note}")
    pool = RowPool(to_run, workers=workers, budget_s=None if args.minutes is None else 60 * args.minutes,
                   quiet=args.quiet, env=worker_env(),
                   command_for=lambda row: worker_command(row, profile=profile, device=device, seed=args.seed,
                                                          precision=precision, threads=threads,
                                                          data_dir=args.data_dir, quiet=args.quiet,
                                                          publish=args.publish))
    if to_run:
        print(f"[reproduce] {len(to_run)} row(s) to run on {device}, {workers} at a time, {threads} CPU thread(s) "
              f"each{f', within {args.minutes:g} min' if args.minutes else ''}", flush=True)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started as a background job by a script: the workers would inherit the ignored SIGINT and could not
        # save on the budget's signal, so Python's default handler is restored (the workers then get SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    gpu.start()
    try:
        pool.run()
    finally:
        gpu.stop()

    entries = [row_summary(r, gpu) for r in rows]
    failed = any(r.status == "failed" for r in rows)
    unfinished = any(r.status in ("interrupted", "not started") for r in rows)
    status = (1 if failed else INTERRUPT_EXIT if pool.stop_reason == "ctrl-c" and unfinished
              else BUDGET_EXIT if unfinished else 0)
    out = summary_path(args.targets, profile, device, publish=args.publish)
    summary = {"targets": list(args.targets), "profile": profile, "device": str(device), "precision": precision,
               "seed": args.seed, "workers": workers, "threads_per_worker": threads, "minutes": args.minutes,
               "stopped_by": pool.stop_reason, "exit_status": status, "rows": entries,
               "gpu_utilisation": gpu.summary(),
               "provenance": provenance.record(device, code=code_version, clock=clock, command=" ".join(sys.argv))}
    provenance.write_json(summary, out)
    print()
    print_table(entries)
    print(f"[reproduce] summary -> {out} ({clock.elapsed():.0f} s"
          f"{', GPU utilisation mean ' + str(gpu.summary()['mean_percent']) + ' %' if gpu.samples else ''})")
    if status == BUDGET_EXIT:
        print(f"[reproduce] the {args.minutes:g}-minute budget ran out: {CONTINUE} (exit status {BUDGET_EXIT})")
    elif status == INTERRUPT_EXIT:
        print(f"[reproduce] stopped by Ctrl-C: {CONTINUE}")
    return status


def add_command(sub) -> None:
    """``python -m ferlib reproduce TARGET... [--profile P] [--device D] [--workers N] [--minutes M] [--dry-run]``."""
    p = sub.add_parser("reproduce", help="train a paper's table rows (or named recipes) in one call, several at "
                                         "once on one device, within a wall budget; skips done rows, resumes others")
    from ..jobs.reproduce import papers, target_groups

    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help=f"a paper, all its rows ({', '.join(papers())}); a named part of one "
                        f"({', '.join(target_groups())}); or recipe names (python -m ferlib recipes lists them)")
    add_profile(p)
    add_device(p)
    p.add_argument("--workers", type=int, help="rows trained at once on the device (default: on CUDA min(rows, 8), "
                   "on a CPU 1)")
    p.add_argument("--minutes", type=float, help="this call's wall budget: rows still running at the end save a "
                   "checkpoint and stop (exit status 3); the same command continues them")
    p.add_argument("--dry-run", action="store_true", help="print each row's expected time from measured throughput "
                   "and whether the rows fit --minutes; trains and writes nothing")
    p.add_argument("--overwrite", action="store_true", help="re-run full-profile rows whose results are stale "
                   "(made by other code, another seed or other data)")
    add_seed(p)
    add_data_dir(p)
    add_precision(p)
    add_publish(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars in the logs, no per-row lines; the table")
    p.set_defaults(func=reproduce_command)
