"""The command line, one module per command: python -m ferlib ...

    python -m ferlib data summary [--data-dir DIR] [--json]
    python -m ferlib recipes
    python -m ferlib train RECIPE [--profile quick|full] [--minutes M] [--compile] [--data-dir DIR] [--device D] [--seed S]
    python -m ferlib predict PHOTO_FOLDER_OR_VIDEO... [--recursive] [--model M] [--runtime torch|onnx] [--json|--csv] [--out PATH]
    python -m ferlib webcam [--camera N] [--out annotated.mp4] [--json|--csv]
    python -m ferlib ensemble MEMBER... [--method mean|vote|de] [--tta none|flip|tencrop] [--last-k K]
    python -m ferlib reproduce PAPER_OR_RECIPE... [--workers N] [--minutes M] [--dry-run] [--overwrite]
    python -m ferlib export RUN_OR_CHECKPOINT OUT.pt|OUT.onnx [--check-split PrivateTest]
    python -m ferlib hand-crafted [--features F...] [--classifiers C...] [--face-filter RULE]
    python -m ferlib face-filter
    python -m ferlib frozen-features [RECIPE...] [--epochs E] [--seeds S...]
    torchrun --nproc-per-node N -m ferlib train RECIPE ...   (DistributedDataParallel, see README)

A mistake (an unknown recipe or profile, a device that is not there, bad data) exits
with status 2 and one message saying what is wrong and how to fix it; --debug shows
the traceback as well.  Ctrl-C during training saves a checkpoint and exits with 130.
"""
from __future__ import annotations

import argparse
import sys

from ..data.errors import DataFormatError, DataNotFoundError
from ..errors import UsageError
from ..train.callbacks import StopTraining, TrainingInterrupted

USER_ERRORS = (UsageError, DataFormatError, DataNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    from . import data, ensemble, frozen_features, hand_crafted, predict, reproduce, train, webcam

    data.add_command(sub)
    train.add_commands(sub)
    predict.add_command(sub)
    webcam.add_command(sub)
    ensemble.add_command(sub)
    reproduce.add_command(sub)
    hand_crafted.add_commands(sub)
    frozen_features.add_command(sub)
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
    except StopTraining as e:  # a planned stop (the hidden --stop-after-steps of the tests): like a kill
        if args.debug:
            raise
        print(f"[ferlib] {e}; no results written", file=sys.stderr)
        return 1
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
