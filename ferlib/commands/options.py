"""The options several commands share, each defined once: ``--device``, ``--profile``, ``--data-dir``,
``--seed``, ``--precision``, ``--publish``; and the checks that turn a bad value into one message."""
from __future__ import annotations

from ..errors import UsageError
from ..profiles import PROFILES


def add_device(p) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")


def add_profile(p, help_extra: str = "") -> None:
    p.add_argument("--profile", choices=PROFILES, help="default: $FERLIB_PROFILE, else quick" + help_extra)


def add_data_dir(p) -> None:
    p.add_argument("--data-dir", help="folder or file with FER-2013 (default: $FERLIB_DATA_DIR, ./data, synthetic)")


def add_seed(p, help: str | None = None) -> None:
    p.add_argument("--seed", type=int, default=0, help=help)


def add_precision(p) -> None:
    p.add_argument("--precision", default="auto", help="auto (bf16 autocast where the device has fast bf16), "
                   "fp32 (bit-reproducible), bf16")


def add_publish(p) -> None:
    p.add_argument("--publish", action="store_true", help="write the results file into the kit's tracked results/ "
                   "(for the kit's maintainers; default: results/local/, which git ignores)")


def user_choice(fn, *args):
    """Call a resolver that raises KeyError/ValueError on a bad name, as a UsageError."""
    try:
        return fn(*args)
    except (KeyError, ValueError) as e:
        raise UsageError(str(e.args[0] if e.args else e)) from None


def parse_device(text: str | None):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a :class:`torch.device` that exists here, else UsageError."""
    import torch

    from ..train.build import resolve_device

    try:
        device = resolve_device(text)
    except RuntimeError:
        raise UsageError(f"unknown device {text!r}", "use --device cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: this machine has no CUDA device visible to torch "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda})",
                             "use --device cpu (with --minutes M for a wall-clock budget), or run on a GPU machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here",
                             f"use cuda:0 ... cuda:{torch.cuda.device_count() - 1}")
    elif device.type != "cpu":
        raise UsageError(f"--device {text}: ferlib trains on cpu or cuda", "use --device cpu, cuda, cuda:N or auto")
    return device


def parse_minutes(minutes: float | None) -> None:
    if minutes is not None and not minutes > 0:
        raise UsageError(f"--minutes must be a positive number of minutes, got {minutes:g}")
