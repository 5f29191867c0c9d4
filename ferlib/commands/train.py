"""``python -m ferlib recipes``, ``train RECIPE`` and ``export RUN OUT.pt|OUT.onnx``.

Every argument is checked before any data is loaded: a mistake costs a message, not
a minute of loading and a traceback (:class:`ferlib.errors.UsageError`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .options import (add_data_dir, add_device, add_precision, add_profile, add_publish, add_seed, parse_device,
                      parse_minutes, user_choice)


def list_recipes(args) -> int:
    from ..train.recipes import ENSEMBLES, RECIPES

    rows = [("recipe", "paper table row", "model", "quick", "full", "paper's numbers (%)")]
    for name, r in sorted(RECIPES.items()):
        paper = ", ".join(f"{k} {v}" for k, v in r.paper_results.items() if not k.startswith("ensemble"))
        rows.append((name, r.row, r.model, f"{r.quick.epochs} ep", f"{r.full.epochs} ep", paper or "-"))
    for name, e in sorted(ENSEMBLES.items()):  # not trained: python -m ferlib ensemble NAME combines trained members
        paper = ", ".join(f"{k} {v}" for k, v in e.paper_results.items())
        rows.append((name, e.row, f"ensemble ({e.method})", "-", "-", (paper or "-") + f"  [{len(e.members)} members: "
                     f"python -m ferlib ensemble {name}]"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def train_command(args) -> int:
    import torch

    from ..data.discovery import locate_data
    from ..profiles import get_profile
    from ..train.callbacks import StopTraining, TrainingInterrupted
    from ..train.distributed import check_global_batch, current_comm, session, world_size_from_env
    from ..train.precision import compile_unavailable_reason, resolve_precision
    from ..train.recipes import get_recipe
    from ..train.results import run_recipe
    from ..runs import RunKey, keep_old_run

    from ..train.recipes import with_face_filter

    recipe = user_choice(get_recipe, args.recipe)
    if args.face_filter:
        recipe = user_choice(with_face_filter, recipe, args.face_filter)
    profile = user_choice(get_profile, args.profile)
    device = parse_device(args.device)
    precision = user_choice(resolve_precision, args.precision, device)
    parse_minutes(args.minutes)
    if args.minutes is not None and profile == "full":
        raise UsageError("--minutes and --profile full are two different budgets",
                         "give one: --minutes M (the whole splits in M minutes) or --profile full (the paper's epochs)")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.compile and (reason := compile_unavailable_reason(device)):
        raise UsageError(f"--compile: {reason}", "install it, or train without --compile (eager mode)")
    if args.compile and world_size_from_env() > 1:
        raise UsageError("--compile is not supported under torchrun", "drop --compile")
    if args.threads:
        torch.set_num_threads(args.threads)
    check_global_batch(recipe.batch_size if args.minutes else recipe.batch_size_for(profile), world_size_from_env())
    if args.publish and profile == "quick" and not args.minutes:
        raise UsageError("--publish writes the kit's tracked results, and the quick profile is a smoke test",
                         "drop --publish, or train with --minutes M or --profile full")
    key = RunKey.for_training(recipe.name, profile, seed=args.seed, minutes=args.minutes, device=device,
                              synthetic=locate_data(args.data_dir).synthetic)
    results_path = Path(args.out) / f"{recipe.name}.json" if args.out else key.results_path(published=args.publish)
    run_dir = Path(args.run_dir) if args.run_dir else key.run_dir()
    # a finished full-profile or wall-clock-budget result is never replaced silently (a quick one is a smoke test)
    overwrite = args.overwrite or (profile == "quick" and not args.minutes) or bool(args.out)
    if results_path.exists() and not overwrite:
        kind = f"{args.minutes:g}-minute budget" if args.minutes else f"{profile}-profile"
        raise UsageError(f"{results_path} already holds a finished {kind} result",
                         "pass --overwrite to replace it, or --out DIR to write the new one elsewhere")
    with session(device, sync_bn=args.sync_bn) as device:  # torchrun's process group, when started by torchrun
        comm = current_comm()
        if args.fresh and run_dir.exists() and comm.is_writer:
            keep_old_run(run_dir)
        comm.barrier()  # the other processes look for a checkpoint only once rank 0 has moved the old run away
        try:
            run_recipe(recipe, profile=profile, data_dir=args.data_dir, device=device, seed=args.seed,
                       results_path=results_path, run_dir=run_dir, resume=True, progress=not args.quiet,
                       overwrite=overwrite, minutes=args.minutes,
                       precision=precision, stop_after_steps=args.stop_after_steps, compile=args.compile)
        except (TrainingInterrupted, UsageError) as e:
            # every process stops at the same step (Ctrl-C, --stop-after-steps, a budget too short) or refuses the
            # same run folder (another run's); rank 0 alone says what happened and what to do (commands.main)
            if comm.is_writer:
                raise
            return 2 if isinstance(e, UsageError) else 1 if isinstance(e, StopTraining) else 130
    return 0


def export_command(args) -> int:
    """``export RUN OUT.pt`` (float16 checkpoint) or ``export RUN OUT.onnx`` (ONNX, checked against PyTorch)."""
    import numpy as np

    from ..data.discovery import load_fer2013
    from ..train.checkpoint import load_model
    from ..train.export import export_model, export_onnx

    source = Path(args.checkpoint)
    if source.is_dir():
        source = source / "best.pt"
    if not source.is_file():
        raise UsageError(f"no checkpoint at {args.checkpoint}",
                         "give a run folder (runs/NAME/) or a .pt file written by python -m ferlib train")
    out = Path(args.out)
    if out.suffix.lower() not in (".pt", ".onnx"):
        raise UsageError(f"{out}: the export is a .pt file (float16 checkpoint) or an .onnx file",
                         "name OUT ending in .pt or .onnx")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} already exists", "choose another OUT, or pass --overwrite to replace it")
    try:
        loaded = load_model(source)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if out.suffix.lower() == ".onnx" and not loaded.has_softmax_head:
        raise UsageError(f"{source} has no softmax head (an embedding read out by k-NN): no probabilities to export",
                         "export a classifier run (e.g. densenet-bc) to ONNX")
    if out.suffix.lower() == ".onnx" and getattr(loaded.model, "side_inputs", ()):
        raise UsageError(f"{source} takes side inputs computed in Python ({', '.join(loaded.model.side_inputs)}): "
                         "its ONNX graph would not be the whole model", "export it as OUT.pt instead")
    test = load_fer2013(args.data_dir, verbose=False).split(args.check_split)
    pixels, labels = np.asarray(test.pixels), np.asarray(test.labels)
    where = f"{test.tag} {args.check_split} ({len(pixels)} faces)"
    if out.suffix.lower() == ".onnx":
        import onnxruntime as ort

        try:
            report = export_onnx(source, out, check_pixels=pixels, check_labels=labels,
                                 provenance={"checked_on": where})
        except ValueError as e:
            raise UsageError(str(e), "report this: the ONNX graph should compute what PyTorch does") from None
        print(f"[ferlib] wrote {out} ({out.stat().st_size / 2**20:.2f} MB, float32, input uint8 faces (N, 48, 48), "
              f"output probabilities of {', '.join(loaded.class_names)}); ONNX Runtime "
              f"{ort.__version__} against PyTorch on {where}: same label {report['same_label']:.2%}, "
              f"largest probability difference {report['max_probability_difference']:.2g}; accuracy PyTorch "
              f"{report['accuracy_pytorch']:.2%}, ONNX {report['accuracy_onnx']:.2%}")
        return 0
    report = export_model(source, out, check_pixels=pixels,
                          provenance={"checked_on": f"{test.tag} {args.check_split}"})
    accuracy = {}
    for label, path in (("original", source), ("float16 export", out)):
        p = load_model(path).predict_proba(test.pixels, precision="fp32")
        accuracy[label] = float((p.argmax(1) == labels).mean())
    print(f"[ferlib] wrote {out} ({out.stat().st_size / 2**20:.2f} MB, float16 weights); on {test.tag} "
          f"{args.check_split} ({report['faces']} faces): same prediction {report['same_prediction']:.2%}, "
          f"largest probability difference {report['max_probability_difference']:.2g}, accuracy "
          + ", ".join(f"{k} {v:.2%}" for k, v in accuracy.items()))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("recipes", help="list the named recipes (one per paper table row)")
    p.set_defaults(func=list_recipes)
    t = sub.add_parser("train", help="train a recipe and write its results file")
    t.add_argument("recipe")
    add_profile(t)
    add_data_dir(t)
    add_device(t)
    add_seed(t)
    t.add_argument("--minutes", type=float, help="wall-clock budget: the whole FER-2013 splits, epochs planned "
                   "from measured throughput to finish in M minutes (results/local/budget/)")
    add_precision(t)
    t.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    t.add_argument("--face-filter", metavar="RULE", help="EmoNet's face filter on Training: drop faces in which "
                   "OpenCV and/or dlib do not find exactly one face (opencv, dlib, both, either; PublicTest and "
                   "PrivateTest are kept whole); the run is named RECIPE-face-filter-RULE")
    t.add_argument("--compile", action="store_true", help="torch.compile the training forward, after 1-3 "
                   "minutes of compiling: on the kit's CPU 1.3-1.6x DenseNet-BC's step, no faster for "
                   "EfficientNet-Lite0 or ResNet-50, slower for VGG13 and the light network (bench/cpu_paths.py "
                   "measures yours); needs a C++ compiler (CPU) or Triton (CUDA)")
    t.add_argument("--out", help="folder for RECIPE.json (default: results/local/, results/local/quick/ for quick "
                   "runs, results/local/budget/ for --minutes)")
    add_publish(t)
    t.add_argument("--run-dir", help="checkpoint folder (default: runs/RECIPE-BUDGET[-synthetic]-seedS); an "
                   "interrupted run resumes")
    t.add_argument("--fresh", action="store_true", help="start over: the old run folder is renamed, not deleted")
    t.add_argument("--overwrite", action="store_true", help="replace an existing full-profile results file")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--sync-bn", action="store_true", help="under torchrun on GPUs: SyncBatchNorm, batch statistics "
                   "over the global batch (default: each process's own; see ferlib.train.distributed)")
    # test hook (tests/test_distributed.py): end the run after N optimiser steps without saving, like a kill
    t.add_argument("--stop-after-steps", type=int, help=argparse.SUPPRESS)
    t.set_defaults(func=train_command)
    e = sub.add_parser("export", help="write a small float16 copy of a trained model (OUT.pt) or an ONNX file "
                       "(OUT.onnx) with its evaluation transform baked in")
    e.add_argument("checkpoint", help="a run folder (its best.pt) or a checkpoint file")
    e.add_argument("out", help="the .pt file (float16 checkpoint) or .onnx file to write")
    add_data_dir(e)
    e.add_argument("--check-split", default="PrivateTest", choices=("PublicTest", "PrivateTest"),
                   help="faces on which the copy's predictions are compared with the original's (ONNX: "
                   "ONNX Runtime's with PyTorch's)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=export_command)
