"""Built-in example models: small per-pixel land-cover classifiers over six Landsat bands,
defined in code with fixed weights (no downloads, same bytes on every build)."""

from __future__ import annotations

from build_hooks.manifest import Band
from build_hooks.spec import ModelSpec

BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")
CLASSES = 3  # bare, vegetation, water
HIDDEN = 16


def pytorch_landcover(seed: int = 20231) -> ModelSpec:
    import torch
    from torch import nn

    class LandCover(nn.Module):
        """1x1 convolutions: every pixel is classified from its own band values."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(len(BANDS), HIDDEN, kernel_size=1)
            self.conv2 = nn.Conv2d(HIDDEN, CLASSES, kernel_size=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.conv2(torch.relu(self.conv1(x))), dim=1)

    generator = torch.Generator().manual_seed(seed)
    model = LandCover()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return _landcover(model.eval(), "pytorch")


def keras_landcover(seed: int = 20231) -> ModelSpec:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs = keras.Input(shape=(None, None, len(BANDS)), name="pixels")
    hidden = keras.layers.Conv2D(HIDDEN, 1, activation="relu", name="conv1")(inputs)
    outputs = keras.layers.Conv2D(CLASSES, 1, activation="softmax", name="conv2")(hidden)
    model = keras.Model(inputs, outputs, name="landcover")
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype("float32") for w in model.get_weights()])
    return _landcover(model, "tensorflow")


def _landcover(model, framework: str) -> ModelSpec:
    """The examples' contract: six reflectance bands in, per-class probabilities out."""
    return ModelSpec(
        model=model,
        framework=framework,
        input_bands=BANDS,
        output_bands=(Band(name="probabilities", dimensions=1, length=CLASSES),),
    )


BUILTIN = {
    "pytorch-landcover": pytorch_landcover,
    "keras-landcover": keras_landcover,
}
