"""A whole split held on the device, served as shuffled, normalised, augmented batches.

The input side of the fast trainer.  FER-2013's Training split is
28,709 x 48 x 48 uint8 = 66 MB: it fits on any GPU, so :class:`DeviceBatchSource`
copies it there once and every batch is

    indices = permutation[k*B:(k+1)*B]        # a slice, no per-sample Python
    x = pixels[indices].float()               # one gather, one conversion
    x = normalize(x)                          # e.g. per-pixel mean/std (x/255 if None)
    x = augment(x, generator)                 # one affine grid per batch (transforms.py)

Normalisation comes **before** augmentation: per-pixel statistics belong to pixel
positions of the original image (DenseNet-CL §IV-C), and zero padding then pads with
the mean.

**Reproducibility and resume.**  Batch ``k`` of epoch ``e`` is a pure function of
the data, the constructor arguments, ``e`` and ``k``:

* the permutation of epoch ``e`` comes from a CPU ``torch.Generator`` seeded with
  ``epoch_seed(seed, e)``, so the order is the same on every device;
* the augmentation generator lives on the device and is re-seeded for every batch
  with ``batch_seed(seed, e, k)``, so batch ``k`` does not depend on batches
  ``0..k-1`` having been computed.

Hence ``iter_from(e, k)`` (or ``start_batch = k``) skips the first ``k`` batches
without computing them and yields **bitwise the same** remaining batches as an
uninterrupted epoch ``e`` on the same device type and torch version.  Across device
types (CPU vs CUDA) the indices are identical but the augmentation draws differ
(different RNG engines).  Seeds are mixed with :class:`numpy.random.SeedSequence`
rather than ``seed + epoch``, so a run with seed 1 does not replay the epochs of a
run with seed 0 shifted by one.

**Sharding across processes** (``rank``, ``world_size``; DistributedDataParallel
under torchrun, :mod:`ferlib.train.distributed`).  ``batch_size`` stays the *global*
batch.  Every rank computes the same permutation of epoch ``e`` and the same global
batch ``k`` (the same seeds), augments the whole global batch, and keeps its
contiguous slice ``torch.tensor_split(batch, world_size)[rank]``: the ranks' slices,
concatenated in rank order, are exactly the single-process batch ``k`` -- the same
samples, the same augmentation of each sample, whatever the world size -- so an epoch
has no duplicates and nothing is left out.  The price of world-size-independent
augmentation is that each rank augments ``world_size`` times the images it trains on
(one affine warp of 128 small faces: little next to a forward and backward pass).
``len(source)`` stays the number of global batches; a last partial batch smaller than
``world_size`` (some rank would get no sample) is dropped.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["DeviceBatchSource", "epoch_seed", "batch_seed", "shard_bounds", "SAMPLERS"]

SAMPLERS = ("random", "balanced")

_PERMUTATION_STREAM = 0x5EED_0001
_AUGMENT_STREAM = 0x5EED_0002


def _mix(*words: int) -> int:
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint64)
    return int(state[0]) & 0x7FFF_FFFF_FFFF_FFFF


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the permutation of ``epoch`` (a 63-bit mix of ``seed`` and ``epoch``)."""
    return _mix(_PERMUTATION_STREAM, seed, epoch)


def batch_seed(seed: int, epoch: int, batch_index: int) -> int:
    """Seed of the augmentation of batch ``batch_index`` of ``epoch``."""
    return _mix(_AUGMENT_STREAM, seed, epoch, batch_index)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[lo, hi)`` of ``rank``'s contiguous share of ``n`` items, as ``torch.tensor_split(items, world_size)``:
    the first ``n % world_size`` ranks get one item more."""
    size, extra = divmod(n, world_size)
    lo = rank * size + min(rank, extra)
    return lo, lo + size + (rank < extra)


def _as_tensor(a) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.ascontiguousarray(a))


class DeviceBatchSource:
    """Shuffled batches of a split stored once on ``device`` as uint8 (N, C, H, W).

    Parameters
    ----------
    pixels : uint8 numpy array or tensor, (N, H, W) or (N, C, H, W).
    labels : (N,) integer class codes (stored as int64), or (N, K) float soft labels
        (e.g. FER+ vote distributions; the dtype is kept).
    batch_size : images per batch.
    device : where the split lives and batches are made.
    normalize : callable float32 (B, C, H, W) in [0, 255] -> normalised float, e.g. a
        ``ferlib.data.normalize`` standardiser (an ``nn.Module`` is moved to
        ``device`` in place).  ``None``: ``x / 255``.
    augment : random augmentation ``augment(x, generator)``, e.g. a
        :class:`~ferlib.data.transforms.BatchAugment`; ``None`` for none.
    transform : deterministic ``transform(x)`` applied when ``augment`` is None, e.g.
        ``aug.eval_transform`` (resize / channels for evaluation).  See
        :meth:`for_eval`.
    shuffle : a new permutation per epoch; False serves 0..N-1 in order.
    drop_last : drop the last, smaller batch.
    seed : base seed of permutations and augmentations (see the module docstring).
    extra : optional mapping name -> array (N, ...) of per-sample data (HOG +
        landmark features, sample indices, ...) stored on the device and indexed
        with each batch; iteration then yields ``(x, y, extra_batch)``.
    channels_last : return ``torch.channels_last`` tensors.
    dtype : dtype of the images yielded (float32; autocast happens in the trainer).
    rank, world_size : serve this process's slice of every global batch (see
        "Sharding" in the module docstring); ``batch_size`` must be divisible by
        ``world_size``.  Defaults: the single-process source.
    sampler : ``"random"`` (default) -- a permutation of the split per epoch.
        ``"balanced"`` -- class-balanced batches for in-batch triplet mining: every batch
        holds ``B // C`` samples of each of the ``C`` classes present, the remaining
        ``B - C * (B // C)`` drawn at random from the whole split, in shuffled order;
        ``N // B`` full batches per epoch (DNNRL Sec. 4: "Each training epoch had
        floor(N/128) batches, with the training samples randomly selected").  A class
        with fewer samples than the epoch needs is recycled (re-shuffled each pass);
        larger classes are drawn without replacement within the epoch.  Deterministic
        in ``(seed, epoch)`` like the permutation, so mid-epoch resume stays bitwise.
        Needs integer labels, ``shuffle=True`` and ``batch_size >= C``.

    Iteration
    ---------
    ``for x, y in source:`` plays epoch ``source.epoch`` and advances ``source.epoch``
    by one (so a plain loop sees a new permutation each epoch); ``set_epoch(e)``
    chooses the next epoch explicitly (DistributedSampler style, idempotent).
    ``source.start_batch = k`` makes the *next* iteration start at batch ``k``
    (one-shot); ``iter_from(epoch, k)`` does the same without touching state.
    """

    def __init__(self, pixels, labels, *, batch_size: int, device="cpu",
                 normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 augment: Callable[..., torch.Tensor] | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 extra: Mapping[str, object] | None = None, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32, sampler: str = "random", rank: int = 0,
                 world_size: int = 1):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        if batch_size % world_size:
            raise ValueError(f"the global batch of {batch_size} does not split evenly over {world_size} processes; "
                             f"choose a batch size divisible by {world_size}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if augment is not None and transform is not None:
            raise ValueError("give either augment (training) or transform (evaluation), not both")
        self.device = torch.device(device)
        px = _as_tensor(pixels)
        if px.dtype != torch.uint8:
            raise TypeError(f"pixels must be uint8 (raw 0..255 values), got {px.dtype}")
        if px.ndim == 3:
            px = px.unsqueeze(1)
        if px.ndim != 4:
            raise ValueError(f"pixels must be (N, H, W) or (N, C, H, W), got shape {tuple(px.shape)}")
        n = px.shape[0]
        if n == 0:
            raise ValueError("pixels is empty: no images to serve")
        self.pixels = px.to(self.device).contiguous()

        lab = _as_tensor(labels)
        if len(lab) != n:
            raise ValueError(f"{len(lab)} labels for {n} images")
        if lab.is_floating_point():
            if lab.ndim != 2:
                raise ValueError(f"float labels must be soft labels (N, K), got shape {tuple(lab.shape)}")
        elif lab.dtype == torch.bool or lab.ndim != 1:
            raise ValueError(f"labels must be (N,) integer codes or (N, K) float, got {lab.dtype} "
                             f"{tuple(lab.shape)}")
        else:
            lab = lab.long()
        self.labels = lab.to(self.device)

        self.extra = None
        if extra is not None:
            self.extra = {}
            for name, value in extra.items():
                t = _as_tensor(value)
                if len(t) != n:
                    raise ValueError(f"extra[{name!r}] has {len(t)} rows for {n} images")
                self.extra[name] = t.to(self.device)

        if isinstance(normalize, nn.Module):
            normalize.to(self.device)
        self.normalize = normalize
        self.augment = augment
        self.transform = transform
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.channels_last = bool(channels_last)
        self.dtype = dtype
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self.start_batch = 0
        self._generator = None  # created lazily on the device
        self.sampler = sampler
        if sampler == "balanced":
            self._check_balanced()

    def _check_balanced(self) -> None:
        if self.labels.is_floating_point():
            raise ValueError("sampler='balanced' needs integer class labels, got soft labels")
        if not self.shuffle:
            raise ValueError("sampler='balanced' draws random batches: it needs shuffle=True")
        classes = torch.unique(self.labels)
        if self.batch_size < len(classes):
            raise ValueError(f"sampler='balanced' needs batch_size >= the number of classes ({len(classes)}), "
                             f"got {self.batch_size}")
        if self.num_samples < self.batch_size:
            raise ValueError(f"sampler='balanced' makes N // batch_size full batches: {self.num_samples} samples "
                             f"are fewer than one batch of {self.batch_size}")
        self._class_indices = [(self.labels == c).nonzero(as_tuple=True)[0].cpu() for c in classes.tolist()]

    @classmethod
    def for_eval(cls, pixels, labels, *, batch_size: int, augment=None, **kwargs) -> "DeviceBatchSource":
        """In order, every sample, no randomness; ``augment``'s ``eval_transform`` if given."""
        transform = getattr(augment, "eval_transform", None) if augment is not None else None
        return cls(pixels, labels, batch_size=batch_size, transform=transform, shuffle=False,
                   drop_last=False, **kwargs)

    # -- sizes ---------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return self.pixels.shape[0]

    def __len__(self) -> int:
        """(Global) batches per epoch."""
        if self.drop_last or self.sampler == "balanced":
            return self.num_samples // self.batch_size
        if self.num_samples % self.batch_size < self.world_size:  # no partial batch, or one too small to share
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    # -- epochs ------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration plays."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def permutation(self, epoch: int) -> torch.Tensor:
        """Sample order of ``epoch`` (int64 on the device); the same on every device."""
        if not self.shuffle:
            return torch.arange(self.num_samples, device=self.device)
        g = torch.Generator(device="cpu").manual_seed(epoch_seed(self.seed, epoch))
        if self.sampler == "balanced":
            return self._balanced_order(g).to(self.device)
        return torch.randperm(self.num_samples, generator=g).to(self.device)

    def _balanced_order(self, g: torch.Generator) -> torch.Tensor:
        """The epoch's ``len(self) * B`` sample indices, batch after batch (see ``sampler``)."""
        batches, b = len(self), self.batch_size
        per_class = b // len(self._class_indices)

        def draw(pool: torch.Tensor, count: int) -> torch.Tensor:
            # concatenated fresh permutations of the pool: no repeats until the pool is used up
            passes = -(-count // len(pool))
            perms = torch.rand(passes, len(pool), generator=g).argsort(1)
            return pool[perms.reshape(-1)[:count]]

        parts = [draw(idx, batches * per_class).view(batches, per_class) for idx in self._class_indices]
        rest = b - per_class * len(self._class_indices)
        parts.append(draw(torch.arange(self.num_samples), batches * rest).view(batches, rest))
        grid = torch.cat(parts, 1)                                      # (batches, B), classes in blocks
        return grid.gather(1, torch.rand(batches, b, generator=g).argsort(1)).reshape(-1)

    def __iter__(self) -> Iterator:
        epoch, start = self.epoch, self.start_batch
        self.epoch, self.start_batch = epoch + 1, 0
        return self._iterate(epoch, start)

    def iter_from(self, epoch: int, batch_index: int = 0) -> Iterator:
        """Batches ``batch_index, batch_index + 1, ...`` of ``epoch``; earlier ones are not computed."""
        return self._iterate(int(epoch), int(batch_index))

    def batch(self, epoch: int, batch_index: int):
        """Batch ``batch_index`` of ``epoch`` alone (computes that epoch's permutation)."""
        if not 0 <= batch_index < len(self):
            raise IndexError(f"batch {batch_index} out of range: {len(self)} batches per epoch")
        return self._make(self.permutation(epoch), epoch, batch_index)

    def _iterate(self, epoch: int, start: int):
        if epoch < 0 or start < 0:
            raise ValueError(f"epoch and batch index must be >= 0, got ({epoch}, {start})")
        order = self.permutation(epoch)
        for k in range(start, len(self)):
            yield self._make(order, epoch, k)

    # -- one batch ---------------------------------------------------------------------------
    def _make(self, order: torch.Tensor, epoch: int, k: int):
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        with torch.no_grad():
            x = self.pixels.index_select(0, idx).to(torch.float32)
            x = self.normalize(x) if self.normalize is not None else x.div_(255.0)
            if self.augment is not None:
                x = self.augment(x, self._augment_generator(epoch, k))
            elif self.transform is not None:
                x = self.transform(x)
            x = x.to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        if self.world_size > 1:  # this rank's slice of the global batch (module docstring, "Sharding")
            lo, hi = shard_bounds(idx.shape[0], self.rank, self.world_size)
            x, idx = x[lo:hi], idx[lo:hi]
        y = self.labels.index_select(0, idx)
        if self.extra is None:
            return x, y
        return x, y, {name: t.index_select(0, idx) for name, t in self.extra.items()}

    def _augment_generator(self, epoch: int, k: int) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator(device=self.device)
        return self._generator.manual_seed(batch_seed(self.seed, epoch, k))

    def __repr__(self) -> str:
        return (f"DeviceBatchSource(num_samples={self.num_samples}, shape={tuple(self.pixels.shape[1:])}, "
                f"batch_size={self.batch_size}, batches={len(self)}, device={self.device}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, sampler={self.sampler!r}, seed={self.seed}, "
                f"rank={self.rank}, world_size={self.world_size}, "
                f"epoch={self.epoch}, "
                f"augment={self.augment!r})")
