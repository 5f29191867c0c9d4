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
* **Validation and decisions.**  One object says what differs between processes:
  the trainer's ``comm`` (:class:`SingleProcess` in one process, :class:`TorchrunComm`
  inside :func:`session`), with votes (``any`` / ``all``), ``sum``, ``broadcast`` of
  rank 0's object, ``barrier`` and ``is_writer``.  Rank 0 evaluates PublicTest and
  the trainer broadcasts what it measured, so selection, early stopping and the DNNRL
  protocol decide the same on every rank; the loss sums of the epoch are summed over
  the ranks before they are recorded.  Decisions taken from a clock or a signal
  (mid-epoch checkpoints every S seconds, Ctrl-C) are a vote at each step (any rank's
  yes holds for all), and the wall-clock budget's plan is rank 0's, broadcast at each
  point where it may plan.  torchrun forwards the terminal's Ctrl-C to every process,
  so there a second SIGINT is the same Ctrl-C, not a request to stop at once (torchrun
  kills what has not stopped after its shutdown timeout).
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

__all__ = ["ProcessGroup", "SingleProcess", "TorchrunComm", "current_comm", "launched_by_torchrun",
           "world_size_from_env", "session", "current", "check_global_batch", "DistributedModel",
           "DistributedCriterion", "unwrap", "distribute"]


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


class SingleProcess:
    """The communication of a one-process run: every collective is the value itself.

    The trainer holds one (``trainer.comm``) and callbacks consult it for what depends
    on the number of processes; :class:`TorchrunComm` has the same methods over
    torchrun's group.  ``is_writer``: this process evaluates PublicTest, writes
    checkpoints and results, and prints.
    """

    rank, world_size, is_writer = 0, 1, True

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is True on any process (a vote: every process calls it at the same point)."""
        return bool(flag)

    def all(self, flag: bool) -> bool:
        """True when ``flag`` is True on every process."""
        return bool(flag)

    def sum(self, values: list) -> list:
        """Each value (a tensor or a float) summed over the processes, in one all-reduce."""
        return list(values)

    def broadcast(self, obj):
        """The writer's ``obj`` (any picklable object) on every process."""
        return obj

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def describe(self) -> dict:
        return {"world_size": 1}


class TorchrunComm(SingleProcess):
    """:class:`SingleProcess`'s methods over a joined torchrun group (rank 0 writes).

    Votes, broadcasts and barriers run on the gloo control group (host-side values);
    :meth:`sum` runs on the default group (tensors stay on the rank's device).
    """

    def __init__(self, group: ProcessGroup):
        self.group = group
        self.rank, self.world_size, self.is_writer = group.rank, group.world_size, group.rank == 0

    def _vote(self, flag: bool, op) -> bool:
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=op, group=self.group.control)
        return bool(t.item())

    def any(self, flag: bool) -> bool:
        return self._vote(flag, dist.ReduceOp.MAX)

    def all(self, flag: bool) -> bool:
        return self._vote(flag, dist.ReduceOp.MIN)

    def sum(self, values: list) -> list:
        values = list(values)
        if not values:
            return values
        device = next((v.device for v in values if torch.is_tensor(v)), self.group.device)
        packed = torch.stack([torch.as_tensor(v, device=device).double().reshape(()) for v in values])
        dist.all_reduce(packed)
        return [packed[i] if torch.is_tensor(v) else float(packed[i]) for i, v in enumerate(values)]

    def broadcast(self, obj):
        box = [obj if self.is_writer else None]
        dist.broadcast_object_list(box, src=0, group=self.group.control)
        return box[0]

    def barrier(self) -> None:
        dist.barrier(group=self.group.control)

    def describe(self) -> dict:
        return self.group.describe()


_CURRENT: ProcessGroup | None = None
_COMM: SingleProcess = SingleProcess()


def current_comm() -> SingleProcess:
    """The communication of this process: the joined group's (:func:`session`), else :class:`SingleProcess`."""
    return _COMM


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

    Without torchrun it yields ``device`` unchanged and does nothing else.  Inside the
    block :func:`current_comm` is the group's :class:`TorchrunComm`.  The group is left
    with :func:`torch.distributed.destroy_process_group`; a block that ends normally
    first waits at a barrier for every rank, so that all ranks leave together (see
    :func:`_leave`).
    """
    global _CURRENT, _COMM
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
    together = False
    try:
        control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
        _CURRENT = ProcessGroup(rank, local_rank, world, backend, device, control, sync_bn)
        _COMM = TorchrunComm(_CURRENT)
        yield device
        together = True
    finally:
        _leave(_COMM, together)
        _CURRENT, _COMM = None, SingleProcess()


def _leave(comm: SingleProcess, together: bool) -> None:
    """Leave the group: after a barrier when the block ended normally on this rank, then destroy it.

    Why the barrier: torch's DistributedDataParallel keeps the gloo backend alive after
    :func:`torch.distributed.destroy_process_group` (its worker threads run on until the
    process exits), and a gloo worker thread drops its reference to the last operation
    (and to that operation's tensors) only after the waiting process has moved on.  A
    rank that left straight after its last all-reduce -- rank 1, while rank 0 evaluated
    and wrote the results -- could reach interpreter shutdown before that thread had
    let go on a loaded machine; freeing a tensor that Python created then needs the
    interpreter, which is gone: ``terminate called without an active exception``
    (SIGABRT).  At the barrier every rank waits until rank 0 is done, the worker
    threads finish with the earlier operations meanwhile, and the barrier itself holds
    no tensors.  After an exception (another rank may never arrive) there is no barrier.
    """
    try:
        if together:
            comm.barrier()
    finally:
        dist.destroy_process_group()


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

    The validator and the callbacks come back as they were given: what differs between
    processes (rank 0 evaluates and writes, votes, rank 0's plan) is the trainer's
    ``comm`` (:func:`current_comm`, a :class:`TorchrunComm` inside :func:`session`),
    which they consult.
    """
    if group.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = DistributedModel(model, group.device)
    own = [p for p in criterion.parameters() if p.requires_grad]
    if own:
        optimizer.register_step_pre_hook(_average_criterion_grads(own))
    criterion = DistributedCriterion(criterion)
    torch.manual_seed(seed * 1_000_003 + group.rank)
    return model, criterion, validator, list(callbacks)
