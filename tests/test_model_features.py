"""``.features`` means the same on every ferlib model: the module from an input batch to the deep features."""
import pytest
import torch
from torch import nn

from ferlib.models import build_model
from ferlib.models.backbones import ResNet18FER
from ferlib.models.embedding_net import EmbeddingNet

MODELS = {
    "tiny DenseNet-BC": (lambda: build_model("tiny-densenet"), (2, 1, 42, 42)),
    "ResNet-18": (lambda: ResNet18FER(in_channels=1, pretrained=False), (2, 1, 48, 48)),
    "EmbeddingNet": (lambda: EmbeddingNet(12, feature_dim=2, hidden=8), (2, 12)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_features_is_the_module_before_the_classifier(name):
    make, shape = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(*shape)
    assert isinstance(model.features, nn.Module)
    with torch.no_grad():
        f = model.features(x)
        logits, f2 = model.forward_with_features(x)
    assert f.shape == (shape[0], model.feature_dim)
    torch.testing.assert_close(f, f2)
    torch.testing.assert_close(logits, model.classifier(f))
    torch.testing.assert_close(model(x), logits)


def test_models_package_exports_build_model():
    import ferlib.models

    assert ferlib.models.build_model is build_model and callable(build_model)
