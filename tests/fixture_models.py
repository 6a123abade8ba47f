"""User-style model factories for the build tests (imported by `package.module:factory`)."""

from __future__ import annotations

from build_hooks.manifest import Band
from build_hooks.spec import ModelSpec


def traced_only() -> ModelSpec:
    """A model torch.jit.script refuses (a lambda attribute), so the build must trace it."""
    import torch
    from torch import nn

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 1, kernel_size=1)
            self.activation = lambda t: torch.sigmoid(t) * 2.0

        def forward(self, x):
            return self.activation(self.conv(x))

    torch.manual_seed(0)
    return ModelSpec(
        model=Scaled().eval(),
        framework="pytorch",
        input_bands=("red", "nir"),
        output_bands=(Band(name="score"),),
    )


def fixed_batch() -> ModelSpec:
    """A model that reshapes with a batch of 1 written out: torch.export cannot make its
    batch dynamic, so it is exported for one tile per call."""
    from torch import nn

    class OneTile(nn.Module):
        def forward(self, x):
            return x.sum(dim=1).reshape(1, 1, x.shape[2], x.shape[3])

    return ModelSpec(
        model=OneTile().eval(), framework="pytorch", input_bands=("red", "nir"), output_bands=(Band(name="sum"),)
    )


def data_dependent() -> ModelSpec:
    """Python control flow on the input's values: torch.export cannot capture it."""
    from torch import nn

    class Branchy(nn.Module):
        def forward(self, x):
            if float(x.mean()) > 0.25:
                return x[:, :1] * 2
            return x[:, :1]

    return ModelSpec(
        model=Branchy().eval(), framework="pytorch", input_bands=("red", "nir"), output_bands=(Band(name="score"),)
    )


def keras_two_outputs() -> ModelSpec:
    """A Keras model whose values split into a class-probability array band and a score band."""
    import keras
    import numpy as np

    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.Conv2D(4, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(7)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return ModelSpec(
        model=model,
        framework="tensorflow",
        input_bands=("B4", "B8", "B11"),
        output_bands=(Band(name="classes", dimensions=1, length=3), Band(name="score")),
    )


def keras_too_many_outputs() -> ModelSpec:
    """A Keras model with 6 output channels whose spec declares 4 values (3 + 1)."""
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(6, 1)(inputs))
    return ModelSpec(
        model=model,
        framework="tensorflow",
        input_bands=("B4", "B8", "B11"),
        output_bands=(Band(name="classes", dimensions=1, length=3), Band(name="score")),
    )
