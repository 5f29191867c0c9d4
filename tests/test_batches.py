"""DeviceBatchSource: coverage, drop_last, seeded order, exact mid-epoch resume, labels."""
import numpy as np
import pytest
import torch

from ferlib.data.batches import DeviceBatchSource, batch_seed, epoch_seed
from ferlib.data.transforms import BatchAugment

N, H = 50, 12


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, H, H), dtype=np.uint8)
    pixels[:, 0, 0] = np.arange(n)  # pixel (0, 0) names the sample
    labels = rng.integers(0, 7, size=n)
    return pixels, labels


def ids(x):
    """Sample ids of a batch made with normalize=None, no augmentation."""
    return (x[:, 0, 0, 0] * 255).round().long().tolist()


def test_storage_shapes_and_dtypes():
    pixels, labels = data()
    src = DeviceBatchSource(pixels, labels.astype(np.int32), batch_size=8)
    assert src.pixels.dtype == torch.uint8 and src.pixels.shape == (N, 1, H, H)
    assert src.labels.dtype == torch.int64 and src.num_samples == N
    x, y = next(iter(src))
    assert x.shape == (8, 1, H, H) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0  # x / 255
    src4 = DeviceBatchSource(torch.from_numpy(pixels)[:, None].expand(N, 3, H, H), labels, batch_size=8)
    assert src4.pixels.shape == (N, 3, H, H)


def test_bad_input_is_refused():
    pixels, labels = data()
    with pytest.raises(TypeError, match="uint8"):
        DeviceBatchSource(pixels.astype(np.float32), labels, batch_size=8)
    with pytest.raises(ValueError, match="labels"):
        DeviceBatchSource(pixels, labels[:-1], batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceBatchSource(pixels, labels, batch_size=0)


def test_one_epoch_covers_every_index_once_with_labels_aligned():
    pixels, labels = data()
    src = DeviceBatchSource(pixels, labels, batch_size=8, shuffle=True)
    assert len(src) == 7  # ceil(50 / 8)
    seen, sizes = [], []
    for x, y in src:
        i = ids(x)
        seen += i
        sizes.append(len(i))
        assert y.tolist() == labels[i].tolist()
    assert sorted(seen) == list(range(N)) and seen != list(range(N))
    assert sizes == [8] * 6 + [2]


def test_drop_last():
    pixels, labels = data()
    src = DeviceBatchSource(pixels, labels, batch_size=8, drop_last=True)
    batches = list(src)
    assert len(src) == len(batches) == 6 and all(len(y) == 8 for _, y in batches)
    assert len(set(sum((ids(x) for x, _ in batches), []))) == 48


def test_unshuffled_order_and_for_eval():
    pixels, labels = data()
    src = DeviceBatchSource.for_eval(pixels, labels, batch_size=16, augment=BatchAugment(out_size=24, channels=3))
    xs = list(src)
    assert [x.shape for x, _ in xs] == [(16, 3, 24, 24)] * 3 + [(2, 3, 24, 24)]
    plain = DeviceBatchSource(pixels, labels, batch_size=16, shuffle=False)
    assert sum((ids(x) for x, _ in plain), []) == list(range(N))


def test_seeded_permutation_reproducible_and_epochs_differ():
    pixels, labels = data()
    a = DeviceBatchSource(pixels, labels, batch_size=8, seed=3)
    b = DeviceBatchSource(pixels, labels, batch_size=8, seed=3)
    assert torch.equal(a.permutation(0), b.permutation(0))
    assert not torch.equal(a.permutation(0), a.permutation(1))
    assert not torch.equal(a.permutation(1), DeviceBatchSource(pixels, labels, batch_size=8, seed=4).permutation(0))
    # iterating advances the epoch; set_epoch replays one
    first = [ids(x) for x, _ in a]
    second = [ids(x) for x, _ in a]
    assert first != second and a.epoch == 2
    a.set_epoch(0)
    assert [ids(x) for x, _ in a] == first
    assert epoch_seed(0, 1) != epoch_seed(1, 0) and batch_seed(0, 0, 1) != batch_seed(0, 1, 0)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
def test_resume_mid_epoch_reproduces_the_remaining_batches_bitwise(device):
    pixels, labels = data()
    aug = BatchAugment(crop_margin=2, flip=True, rotation=15, scale=(0.9, 1.1))
    src = DeviceBatchSource(pixels, labels, batch_size=8, augment=aug, seed=11, device=device)
    src.set_epoch(2)
    full = list(src)
    assert full[0][0].device.type == device
    fresh = DeviceBatchSource(pixels, labels, batch_size=8, augment=aug, seed=11, device=device)
    rest = list(fresh.iter_from(2, 3))
    assert len(rest) == len(full) - 3
    for (xa, ya), (xb, yb) in zip(full[3:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # the same through the start_batch attribute, which is one-shot
    fresh.set_epoch(2)
    fresh.start_batch = 5
    assert torch.equal(next(iter(fresh))[0], full[5][0])
    assert fresh.start_batch == 0 and fresh.epoch == 3
    assert torch.equal(fresh.batch(2, 6)[0], full[6][0])
    # augmentation is on: batches differ from the plain images
    plain = DeviceBatchSource(pixels, labels, batch_size=8, seed=11, device=device)
    assert not torch.allclose(list(plain.iter_from(2, 3))[0][0], rest[0][0])


def test_normalize_is_applied_before_augmentation():
    pixels, labels = data()
    calls = []

    def normalize(x):
        calls.append((x.dtype, float(x.max())))
        return (x - 128.0) / 64.0

    src = DeviceBatchSource(pixels, labels, batch_size=10, normalize=normalize, shuffle=False)
    x, _ = next(iter(src))
    assert calls[0][0] == torch.float32 and calls[0][1] > 1.0  # saw raw 0..255 values
    ref = (torch.from_numpy(pixels[:10]).float()[:, None] - 128.0) / 64.0
    assert torch.allclose(x, ref)


def test_soft_labels_and_extra_pass_through():
    pixels, _ = data()
    soft = np.random.default_rng(1).dirichlet(np.ones(8), size=N).astype(np.float32)
    feats = np.arange(N * 3, dtype=np.float32).reshape(N, 3)
    src = DeviceBatchSource(pixels, soft, batch_size=8, extra={"feats": feats, "index": np.arange(N)},
                            channels_last=True)
    for x, y, extra in src:
        i = ids(x)
        assert y.dtype == torch.float32 and y.shape == (len(i), 8)
        assert np.allclose(y.numpy(), soft[i])
        assert extra["index"].tolist() == i and np.allclose(extra["feats"].numpy(), feats[i])
        assert x.is_contiguous(memory_format=torch.channels_last)
