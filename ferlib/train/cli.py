"""``python -m ferlib recipes`` and ``python -m ferlib train RECIPE``."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path


def _list_recipes(args) -> int:
    from .recipes import RECIPES

    width = max(len(n) for n in RECIPES)
    for name, r in sorted(RECIPES.items()):
        paper = ", ".join(f"{k} {v}" for k, v in r.paper_results.items() if not k.startswith("ensemble"))
        print(f"{name:<{width}}  {r.row:<45} model={r.model:<17} quick={r.quick.epochs} ep  "
              f"full={r.full.epochs} ep  paper: {paper}")
    return 0


def _train(args) -> int:
    import torch

    from .. import paths
    from ..profiles import get_profile
    from .build import resolve_device
    from .precision import resolve_precision
    from .recipes import get_recipe
    from .results import default_results_path, run_name, run_recipe

    recipe = get_recipe(args.recipe)
    profile = get_profile(args.profile)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if args.threads:
        torch.set_num_threads(args.threads)
    results_path = (Path(args.out) / f"{recipe.name}.json" if args.out
                    else default_results_path(recipe, profile, args.minutes, device))
    run_dir = (Path(args.run_dir) if args.run_dir
               else paths.runs_dir() / run_name(recipe, profile, args.seed, args.minutes, device))
    if args.fresh and run_dir.exists():
        kept = run_dir.with_name(run_dir.name + _dt.datetime.now().strftime(".old-%Y%m%d-%H%M%S"))
        run_dir.rename(kept)
        print(f"[ferlib] previous run kept as {kept}")
    run_recipe(recipe, profile=profile, data_dir=args.data_dir, device=device, seed=args.seed,
               results_path=results_path, run_dir=run_dir, resume=True, progress=not args.quiet,
               overwrite=args.overwrite or profile == "quick" or bool(args.out), minutes=args.minutes,
               precision=precision)
    return 0


def add_train_commands(sub) -> None:
    p = sub.add_parser("recipes", help="list the named recipes (one per paper table row)")
    p.set_defaults(func=_list_recipes)
    t = sub.add_parser("train", help="train a recipe and write its results file")
    t.add_argument("recipe")
    t.add_argument("--profile", choices=("quick", "full"), help="default: $FERLIB_PROFILE, else quick")
    t.add_argument("--data-dir", help="folder or file with FER-2013 (default: $FERLIB_DATA_DIR, ./data, synthetic)")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--minutes", type=float, help="wall-clock budget: the whole FER-2013 splits, epochs planned "
                   "from measured throughput to finish in M minutes (results/budget/)")
    t.add_argument("--precision", default="auto", help="auto (bf16 autocast where the device has fast bf16), "
                   "fp32 (bit-reproducible), bf16")
    t.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    t.add_argument("--out", help="folder for RECIPE.json (default: results/, or results/quick/ for quick runs)")
    t.add_argument("--run-dir", help="checkpoint folder (default: runs/RECIPE-PROFILE-seedS); an interrupted run resumes")
    t.add_argument("--fresh", action="store_true", help="start over: the old run folder is renamed, not deleted")
    t.add_argument("--overwrite", action="store_true", help="replace an existing full-profile results file")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_train)
