"""Model factories shaped like Google's Earth Engine examples, for the contract tests."""

from __future__ import annotations

from build_hooks.manifest import Band
from build_hooks.spec import ModelSpec


def keras_array_band() -> ModelSpec:
    """Like the tree-counting notebook's model: one array band `array_image` of 3 values
    per pixel ([y, x, 3]) in, a 3x3 convolution (so the tile's edges need the overlap), two
    outputs."""
    import keras
    import numpy as np

    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(11)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return ModelSpec(
        model=model,
        framework="tensorflow",
        input_bands=("array_image",),
        output_bands=(Band(name="segmentation", dimensions=1, length=1), Band(name="density")),
    )
