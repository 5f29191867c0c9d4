"""Training on several processes: ``torchrun --nproc-per-node N -m ferlib train RECIPE ...``.

torchrun (``torch.distributed.run``) starts the processes, sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` (and the rendezvous address) in each one's
environment, restarts them all when one fails (``--max-restarts``), and handles
several machines through its rendezvous options (``--nnodes``, ``--rdzv-endpoint``).
ferlib has no launcher of its own: :func:`session` reads that environment, calls
:func:`torch.distributed.init_process_group` (NCCL on CUDA, gloo on the CPU) and
:func:`torch.distributed.destroy_process_group` at the end; :func:`distribute`
wraps the parts :func:`~ferlib.train.build.build_run` made.  Without torchrun
(``WORLD_SIZE`` unset or 1) nothing here runs and training is unchanged.

Decisions (the README's "More than one GPU" says the same):

* **Global batch.**  The recipe's batch size is the *global* batch, split evenly
  over the ranks (``batch / world`` each; a batch size that does not divide is
  refused before data loads).  Each rank takes its contiguous slice of the same
  seeded global batch (:class:`~ferlib.data.batches.DeviceBatchSource`, "Sharding"),
  losses are per-rank means, and DistributedDataParallel averages the gradients over
  the ranks -- so one step is the single-process step over the same global batch, and
  the paper's learning rate needs no scaling.  ``tests/test_distributed.py`` checks
  the first-step gradient against a single process.
* **BatchNorm.**  Per-rank batch statistics by default (DistributedDataParallel's
  default: each rank normalises with the statistics of its own ``batch / world``
  images, and the running statistics of rank 0 are broadcast to the others at each
  forward, ``broadcast_buffers=True``, so evaluation and checkpoints use rank 0's).
  ``--sync-bn`` converts every BatchNorm to :class:`torch.nn.SyncBatchNorm`
  (statistics over the global batch, as one process would compute them; one more
  all-reduce per BatchNorm layer).  With 64 or more images per rank the per-rank
  statistics are already good estimates, so the default saves the communication;
  SyncBatchNorm matters when the per-rank batch gets small.  torch's SyncBatchNorm
  runs on GPUs only; on the CPU ``--sync-bn`` is refused.
* **Criterion state.**  The center rule (DenseNet-CL Eq. 4/6) moves the centers with
  the features of the batch: :class:`DistributedCriterion` all-gathers the ranks'
  features and labels and applies the rule to the global batch (the single-process
  update), then broadcasts rank 0's buffers so the centers stay bitwise identical.
  A criterion's own parameters (the gradient variant of the centers) get their
  gradients averaged over the ranks before each optimiser step (an optimiser
  step-pre-hook).  Triplet losses mine within each rank's ``batch / world`` slice
  (fewer candidate triplets per batch than one process would see; the balanced
  sampler's class balance holds for the global batch, not for each slice).
* **Validation and decisions.**  Rank 0 evaluates PublicTest and broadcasts what it
  measured (:class:`RankZeroValidator`), so selection, early stopping and the DNNRL
  protocol decide the same on every rank; the loss sums of the epoch are summed over
  the ranks before they are recorded.  Decisions taken from a clock or a signal
  (mid-epoch checkpoints every S seconds, Ctrl-C) are a vote at each step
  (:func:`agree_any`: any rank's yes holds for all), and the wall-clock budget's plan
  is rank 0's, broadcast (:class:`SharedPlan`).  torchrun forwards the terminal's
  Ctrl-C to every process, so there a second SIGINT is the same Ctrl-C, not a request
  to stop at once (torchrun kills what has not stopped after its shutdown timeout).
* **Files.**  Rank 0 alone writes checkpoints and the results file; every rank reads
  ``latest.pt`` when torchrun restarts them (``--max-restarts``) or the command is run
  again, so all resume at the same global batch.  The position is a global batch
  index, so even another number of processes resumes the same stream of batches.

Tested (``tests/test_distributed.py``) with 2 CPU processes on gloo.  The CUDA side --
NCCL, ``cuda:LOCAL_RANK``, ``--sync-bn`` -- follows torch's documented use but has not
yet run on a multi-GPU machine.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import UsageError
from .callbacks import Callback

__all__ = ["ProcessGroup", "launched_by_torchrun", "world_size_from_env", "session", "current", "is_main_process",
           "check_global_batch", "barrier", "agree_any", "broadcast_from_main", "sum_over_ranks", "DistributedModel",
           "DistributedCriterion", "RankZeroValidator", "SharedPlan", "unwrap", "distribute"]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a torchrun job, once :func:`session` has joined the group."""

    rank: int
    local_rank: int
    world_size: int
    backend: str  # of the default group: "nccl" (CUDA) or "gloo" (CPU)
    device: torch.device  # this rank's device: cuda:LOCAL_RANK, or the CPU
    control: object  # a gloo group for small host-side votes and objects (the default group on the CPU)
    sync_bn: bool = False

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend, "sync_batchnorm": self.sync_bn,
                "launcher": "torchrun"}


_CURRENT: ProcessGroup | None = None


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UsageError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number",
                         "start several processes with torchrun --nproc-per-node N -m ferlib train ...") from None


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1)."""
    return world_size_from_env() > 1


def current() -> ProcessGroup | None:
    """The joined group, or None in a single-process run."""
    return _CURRENT


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or the only process: the one that writes files and prints."""
    return _CURRENT is None or _CURRENT.rank == 0


def check_global_batch(batch_size: int, world_size: int) -> None:
    """The recipe's (global) batch must split evenly over the processes (UsageError otherwise)."""
    if batch_size % world_size:
        raise UsageError(f"the recipe's batch of {batch_size} images does not split evenly over {world_size} "
                         f"processes (the batch is global: {batch_size} / {world_size} per process)",
                         f"start a number of processes that divides {batch_size} "
                         f"(torchrun --nproc-per-node N)")


def _rank_device(device: torch.device, local_rank: int) -> torch.device:
    if device.type == "cuda":
        if device.index not in (None, local_rank):
            raise UsageError(f"--device {device} under torchrun: each process uses the GPU of its LOCAL_RANK",
                             "give --device cuda (process i trains on cuda:i of its machine)")
        if local_rank >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) here",
                             "start at most as many processes per machine as it has GPUs (--nproc-per-node)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@contextlib.contextmanager
def session(device: torch.device, *, sync_bn: bool = False):
    """Join torchrun's process group for the ``with`` block; yields this rank's device.

    Without torchrun it yields ``device`` unchanged and does nothing else.  The group
    is left with :func:`torch.distributed.destroy_process_group` however the block ends.
    """
    global _CURRENT
    if not launched_by_torchrun():
        if sync_bn:
            raise UsageError("--sync-bn synchronises BatchNorm across processes, but this is a single process",
                             "start several with torchrun --nproc-per-node N -m ferlib train ... --sync-bn")
        yield device
        return
    if sync_bn and device.type != "cuda":
        raise UsageError("--sync-bn: torch's SyncBatchNorm runs on GPUs only",
                         "leave --sync-bn out on the CPU (each process then normalises with its own batch statistics)")
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size_from_env()
    device = _rank_device(device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, **({"device_id": device} if device.type == "cuda" else {}))
    try:
        control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
        _CURRENT = ProcessGroup(rank, local_rank, world, backend, device, control, sync_bn)
        yield device
    finally:
        _CURRENT = None
        dist.destroy_process_group()


# -- small collectives ------------------------------------------------------------------------
def agree_any(flag: bool) -> bool:
    """True on every rank when it is True on any (a host-side vote over the gloo control group)."""
    if _CURRENT is None:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_CURRENT.control)
    return bool(t.item())


def barrier() -> None:
    """Wait for every rank (:func:`torch.distributed.barrier` on the control group); nothing in one process."""
    if _CURRENT is not None:
        dist.barrier(group=_CURRENT.control)


def broadcast_from_main(obj):
    """Rank 0's ``obj`` on every rank (picklable objects; :func:`torch.distributed.broadcast_object_list`)."""
    if _CURRENT is None:
        return obj
    box = [obj if _CURRENT.rank == 0 else None]
    dist.broadcast_object_list(box, src=0, group=_CURRENT.control)
    return box[0]


def sum_over_ranks(loss: torch.Tensor, terms: dict) -> tuple[torch.Tensor, dict]:
    """The trainer's running loss sums (device tensors) summed over the ranks: one all-reduce."""
    names = sorted(terms)
    packed = torch.stack([loss.double().reshape(())] + [terms[k].double().reshape(()) for k in names])
    dist.all_reduce(packed)
    return packed[0], {k: packed[i + 1] for i, k in enumerate(names)}


def _all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` (rows may differ by rank, as a last partial batch does), in rank order."""
    world = _CURRENT.world_size
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[:t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


# -- wrapped parts ------------------------------------------------------------------------------
class _FeaturesForward(nn.Module):
    """``forward = model.forward_with_features``: what DistributedDataParallel calls in a training step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_with_features(x)


class DistributedModel(nn.Module):
    """The model with DistributedDataParallel on its training path, the plain model everywhere else.

    A training forward (``self.training`` and gradients on) goes through
    :class:`~torch.nn.parallel.DistributedDataParallel`, whose backward averages the
    gradients over the ranks.  Evaluation forwards call the model itself (no
    collective: rank 0 may evaluate alone).  ``state_dict`` / ``load_state_dict`` are
    the plain model's, so checkpoints load into a single-process model, and other
    attributes (``feature_dim``, ``classifier``, ...) are read from it.
    """

    def __init__(self, model: nn.Module, device: torch.device):
        super().__init__()
        self.model = model
        ids = [device.index] if device.type == "cuda" else None
        self.__dict__["ddp"] = DistributedDataParallel(_FeaturesForward(model), device_ids=ids)  # not a submodule

    def _trains(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def forward_with_features(self, x):
        return self.ddp(x) if self._trains() else self.model.forward_with_features(x)

    def forward(self, x):
        return self.forward_with_features(x)[0] if self._trains() else self.model(x)

    def train(self, mode: bool = True):
        self.ddp.train(mode)
        return super().train(mode)

    def state_dict(self, *args, **kwargs):
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)


class DistributedCriterion(nn.Module):
    """A criterion whose state after each step is the same on every rank (see the module docstring).

    ``after_step`` all-gathers the features and labels and runs the criterion's own
    update (the center rule) on the global batch, then broadcasts rank 0's buffers
    (float sums may round differently on different GPUs).  A criterion without
    buffers keeps its rank-local ``after_step`` (nothing to keep in step).  Its own
    trainable parameters get averaged gradients through :func:`distribute`.
    """

    def __init__(self, criterion: nn.Module):
        super().__init__()
        self.criterion = criterion
        self._has_state = any(True for _ in criterion.buffers())

    def forward(self, logits, features, labels):
        return self.criterion(logits, features, labels)

    @torch.no_grad()
    def after_step(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if not self._has_state:
            return self.criterion.after_step(features, labels)
        self.criterion.after_step(_all_gather_rows(features), _all_gather_rows(labels))
        for b in self.criterion.buffers():
            dist.broadcast(b, src=0)

    def state_dict(self, *args, **kwargs):
        return self.criterion.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.criterion.load_state_dict(state_dict, strict=strict, assign=assign)

    def __getattr__(self, name):  # last_terms, extra_param_groups, on_lr_change, validation_loss, ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["criterion"], name)


class RankZeroValidator:
    """Rank 0 measures PublicTest with the wrapped validator; every rank gets rank 0's numbers.

    The other ranks wait in the broadcast meanwhile; selection, early stopping and the
    protocol's rules then see the same record everywhere.
    """

    def __init__(self, validator):
        self.validator = validator

    def __call__(self, model, val_source, autocast_dtype=None) -> dict:
        measured = self.validator(model, val_source, autocast_dtype) if is_main_process() else None
        return broadcast_from_main(measured)

    def describe(self) -> dict:
        return self.validator.describe()

    def __getattr__(self, name):
        return getattr(self.validator, name)


class SharedPlan(Callback):
    """A :class:`~ferlib.train.callbacks.TimeBudget` whose plan is rank 0's on every rank.

    The budget plans from timings, which differ a little between processes; after each
    point where it may plan (the calibration step of epoch 1, each epoch's end) rank
    0's plan and epoch count are broadcast, and the schedule follows them.
    """

    def __init__(self, budget):
        self.budget = budget

    def __getattr__(self, name):  # seconds_left, budget_s, ... (the progress bar reads them)
        return getattr(self.__dict__["budget"], name)

    def _share(self, trainer) -> None:
        plan = broadcast_from_main(dict(trainer.state.plan))
        trainer.state.plan = plan
        if plan.get("epochs") and plan["epochs"] != trainer.epochs:
            trainer.epochs = plan["epochs"]
            trainer.schedule_total_steps(plan["epochs"] * len(trainer.train_source))

    def on_fit_start(self, trainer) -> None:
        self.budget.on_fit_start(trainer)

    def on_step_end(self, trainer) -> None:
        self.budget.on_step_end(trainer)
        s = trainer.state
        if s.epoch == 0 and s.steps == self.budget.skip_steps + self.budget.calibration_steps:
            self._share(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.budget.on_epoch_end(trainer, record)
        self._share(trainer)

    def on_fit_end(self, trainer) -> None:
        self.budget.on_fit_end(trainer)


def unwrap(module):
    """The plain model or criterion inside a :class:`DistributedModel` / :class:`DistributedCriterion`."""
    if isinstance(module, DistributedModel):
        return module.model
    if isinstance(module, DistributedCriterion):
        return module.criterion
    return module


def _average_criterion_grads(params):
    def hook(optimizer, args, kwargs):
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(_CURRENT.world_size)
    return hook


def distribute(group: ProcessGroup, *, model: nn.Module, criterion: nn.Module, optimizer, validator, callbacks,
               seed: int):
    """Wrap built parts for ``group``: returns ``(model, criterion, validator, callbacks)``.

    Called by :func:`~ferlib.train.build.build_run` after the model, criterion and
    optimiser exist on this rank's device (SyncBatchNorm conversion keeps the same
    parameter tensors, so the optimiser needs no rebuilding).  Every rank built its
    model from the same seed, and DistributedDataParallel broadcasts rank 0's weights
    besides; then the global RNG is re-seeded per rank, so dropout draws differ across
    the ranks' slices, as they would across one process's batch.
    """
    from .callbacks import LongRunWarning, MidEpochCheckpoint, ProgressBar, SaveOnInterrupt, TimeBudget

    if group.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = DistributedModel(model, group.device)
    own = [p for p in criterion.parameters() if p.requires_grad]
    if own:
        optimizer.register_step_pre_hook(_average_criterion_grads(own))
    criterion = DistributedCriterion(criterion)
    torch.manual_seed(seed * 1_000_003 + group.rank)
    wrapped = []
    for cb in callbacks:
        if isinstance(cb, (ProgressBar, LongRunWarning)) and group.rank != 0:
            continue  # they only print: rank 0 speaks for all
        if isinstance(cb, (MidEpochCheckpoint, SaveOnInterrupt)):
            cb.agree = agree_any
        if isinstance(cb, SaveOnInterrupt):
            cb.repeat_interrupts = False  # torchrun forwards the terminal's Ctrl-C: the second SIGINT is the same one
        wrapped.append(SharedPlan(cb) if isinstance(cb, TimeBudget) else cb)
    return model, criterion, RankZeroValidator(validator), wrapped
