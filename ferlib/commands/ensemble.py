"""``python -m ferlib ensemble MEMBER...``: combine finished runs (:mod:`ferlib.jobs.ensembles`)."""
from __future__ import annotations

from ..evaluate import ensemble as ens
from ..evaluate.tta import TTA_MODES
from ..jobs.ensembles import EnsembleError, run_ensemble
from .options import add_data_dir, add_device, add_profile, add_publish, parse_device


def ensemble_command(args) -> int:
    device = parse_device(args.device)
    if args.eval_per_class is not None and args.eval_per_class < 1:
        raise EnsembleError(f"--eval-per-class must be at least 1, got {args.eval_per_class}")
    run_ensemble(args.members, method=args.method, tta=args.tta, last_k=args.last_k, objective=args.objective,
                 seed=args.seed, data_dir=args.data_dir, device=device, eval_per_class=args.eval_per_class,
                 profile=args.profile, name=args.name, out_dir=args.out, progress=not args.quiet,
                 publish=args.publish)
    return 0


def add_command(sub) -> None:
    e = sub.add_parser("ensemble", help="combine finished runs or committed models (or one run's last checkpoints) "
                                        "and write results/local/ensembles/NAME.json")
    e.add_argument("members", nargs="+", metavar="MEMBER",
                   help="run folders (runs/NAME), model files (e.g. the kit's models/*.pt), run names or recipe "
                        "names (their largest-budget trained run); or one ensemble recipe (emonet-ensemble: its "
                        "members and method)")
    e.add_argument("--method", choices=ens.METHODS, default=None,
                   help="mean of probabilities (the default), majority vote, or de: weights fitted by differential "
                        "evolution on PublicTest (EmoNet; an ensemble recipe's own method by default)")
    e.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation: none, flip (2 views) "
                   "or tencrop (4 corners + centre, each flipped)")
    e.add_argument("--last-k", type=int, help="each member is the mean of its last K epoch checkpoints "
                   "(DenseNet-CL: 5; needs run folders, not exported models); default: its selected model")
    e.add_argument("--objective", choices=ens.OBJECTIVES, default="nll",
                   help="what --method de minimises on PublicTest")
    e.add_argument("--seed", type=int, default=0, help="seed of differential evolution")
    add_profile(e, "; for recipe names: only that profile's runs")
    e.add_argument("--eval-per-class", type=int, help="images per class of PublicTest and PrivateTest (default: all; "
                   "for quick-profile members, their quick budget)")
    add_data_dir(e)
    add_device(e)
    e.add_argument("--name", help="results file name (default: MEMBERS--METHOD[-tta-T][-lastK])")
    e.add_argument("--out", help="folder for NAME.json (default: results/local/ensembles/)")
    add_publish(e)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=ensemble_command)
