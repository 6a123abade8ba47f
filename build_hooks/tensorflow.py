"""TensorFlow: a SavedModel whose serving signature takes Earth Engine's payload.

Keras models go through `Model.export()`'s machinery (keras.export.ExportArchive) so the
serving signature can be ours; any other tf.Module through `tf.saved_model.save()`.

Signatures per payload format, as Google's TensorFlow notebooks (earthengine-community
guides/linked: Earth_Engine_TensorFlow_Vertex_AI.ipynb, Earth_Engine_Vertex_AI_training_demo
.ipynb, Earth_Engine_TensorFlow_tree_counting_model.ipynb) decode them: `tf.io.decode_base64`
(web-safe), `tf.io.parse_tensor(x, tf.float32)`, then `tf.concat(..., axis=3)` over bands.
- SERIALIZED_TF_TENSORS / GRPC_SERIALIZED_TF_TENSORS: one string input per band; each
  instance's value is a base64 serialized TensorProto: [y, x] or [y, x, 1] for a scalar band
  (Google's files do not settle which, so both), [y, x, N] for an array band; standard or
  web-safe alphabet, padded or not. Outputs likewise, one per output band
  (`tf.io.encode_base64(tf.io.serialize_tensor(x))`): [y, x] or [y, x, length].
- GRPC_TF_TENSORS: one float32 input per band, [N, y, x], [N, y, x, 1] or [N, y, x, N];
  float32 outputs per band.
- GRPC_SERIALIZED_TF_EXAMPLES: one string input named "input", a serialized tf.Example
  with one float list of y*x (or y*x*N) values per band.

An instance is tile_size + 2 * input_overlap pixels a side; the outputs are the centre
output_tile_size of what the model computes.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from build_hooks.spec import ModelSpec

SIGNATURE = "serving_default"


def _split_outputs(spec: ModelSpec, values):
    """[N, y, x, values] -> {band: [N, y, x] or [N, y, x, length]}."""
    import tensorflow as tf

    outputs, start = {}, 0
    for band in spec.output_bands:
        part = values[..., start : start + band.length]
        start += band.length
        outputs[band.name] = tf.squeeze(part, axis=-1) if band.dimensions == 0 else part
    return outputs


def _crop(values, size, margin: int):
    """The centre of the model's [N, h, w, c] answer: `margin` pixels off each edge of the
    instance's own size."""
    import tensorflow as tf

    if not margin:
        return values
    want = tf.maximum(size - 2 * margin, 1)
    have = tf.shape(values)[1:3]
    start = tf.maximum((have - want) // 2, 0)
    length = tf.minimum(have, want)
    return values[:, start[0] : start[0] + length[0], start[1] : start[1] + length[1], :]


def _with_channels(tensor, length: int, batched: bool):
    """A band as [(N,) y, x, length], from [(N,) y, x] or [(N,) y, x, length]."""
    import tensorflow as tf

    lead = 3 if batched else 2
    tf.debugging.assert_rank_in(
        tensor,
        [lead, lead + 1],
        message=f"a band must be [{'N, ' if batched else ''}y, x] or [{'N, ' if batched else ''}y, x, values]",
    )
    shaped = tf.reshape(tensor, tf.concat([tf.shape(tensor)[:lead], [-1]], axis=0))
    return tf.ensure_shape(shaped, [None] * lead + [length])


def serving_function(
    spec: ModelSpec,
    payload_format: str,
    tile_size: int,
    *,
    input_overlap: int = 0,
    output_tile_size: int | None = None,
    band_lengths: dict[str, int] | None = None,
):
    """(function, input_signature) for the payload format."""
    import tensorflow as tf

    bands = spec.input_bands
    lengths = {b: (band_lengths or {}).get(b, 1) for b in bands}
    model = spec.model
    side = tile_size + 2 * input_overlap
    margin = (side - (output_tile_size or tile_size)) // 2

    def predict(stacked):
        values = tf.cast(model(stacked, training=False), tf.float32)
        return _split_outputs(spec, _crop(values, tf.shape(stacked)[1:3], margin))

    if payload_format in ("SERIALIZED_TF_TENSORS", "GRPC_SERIALIZED_TF_TENSORS"):

        def decode(encoded, length):
            # tf.io.decode_base64 wants the web-safe alphabet (padding optional); Earth Engine
            # uses it, other clients send the standard one.
            websafe = tf.strings.regex_replace(tf.strings.regex_replace(encoded, r"\+", "-"), "/", "_")
            return tf.map_fn(
                lambda x: _with_channels(tf.io.parse_tensor(x, tf.float32), length, batched=False),
                tf.io.decode_base64(websafe),
                fn_output_signature=tf.TensorSpec([None, None, length], tf.float32),
            )

        def encode(tensor):
            return tf.map_fn(
                lambda t: tf.io.encode_base64(tf.io.serialize_tensor(t)),
                tensor,
                fn_output_signature=tf.string,
            )

        def serve(inputs):
            stacked = tf.concat([decode(inputs[b], lengths[b]) for b in bands], axis=-1)
            return {name: encode(value) for name, value in predict(stacked).items()}

        signature = {b: tf.TensorSpec([None], tf.string, name=b) for b in bands}
    elif payload_format == "GRPC_TF_TENSORS":

        def serve(inputs):
            return predict(
                tf.concat(
                    [_with_channels(tf.cast(inputs[b], tf.float32), lengths[b], batched=True) for b in bands], axis=-1
                )
            )

        # Rank left open: [N, y, x] and [N, y, x, values] are both accepted.
        signature = {b: tf.TensorSpec(None, tf.float32, name=b) for b in bands}
    elif payload_format == "GRPC_SERIALIZED_TF_EXAMPLES":
        features = {
            b: tf.io.FixedLenFeature([side, side] + ([lengths[b]] if lengths[b] > 1 else []), tf.float32) for b in bands
        }

        def serve(inputs):
            parsed = tf.io.parse_example(inputs["input"], features)
            return predict(tf.concat([tf.reshape(parsed[b], [-1, side, side, lengths[b]]) for b in bands], axis=-1))

        signature = {"input": tf.TensorSpec([None], tf.string, name="input")}
    else:
        raise ValueError(
            f"model.payload_format: {payload_format!r} is not served by TensorFlow artifacts; allowed: "
            "SERIALIZED_TF_TENSORS, GRPC_SERIALIZED_TF_TENSORS, GRPC_TF_TENSORS, GRPC_SERIALIZED_TF_EXAMPLES"
        )
    return serve, signature


def export_tensorflow(
    spec: ModelSpec,
    payload_format: str,
    tile_size: int,
    out_dir: Path,
    *,
    input_overlap: int = 0,
    output_tile_size: int | None = None,
    band_lengths: dict[str, int] | None = None,
) -> Path:
    """Write a SavedModel into out_dir (which must not exist yet)."""
    import keras
    import tensorflow as tf

    serve, signature = serving_function(
        spec,
        payload_format,
        tile_size,
        input_overlap=input_overlap,
        output_tile_size=output_tile_size,
        band_lengths=band_lengths,
    )
    if isinstance(spec.model, keras.Model):
        archive = keras.export.ExportArchive()
        archive.track(spec.model)
        archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[signature])
        with _stable_variable_order():
            archive.write_out(str(out_dir), verbose=False)
    else:
        module = tf.Module()
        module.model = spec.model
        module.serve = tf.function(serve, input_signature=[signature])
        tf.saved_model.save(module, str(out_dir), signatures={SIGNATURE: module.serve})
    _fix_fingerprint_uuid(out_dir)
    return out_dir


@contextlib.contextmanager
def _stable_variable_order():
    """Keras lists the variables an endpoint uses in capture order, which varies from run
    to run; sorted by path, the checkpoint and graph come out the same every time."""
    from keras.src.export import saved_model_export_archive as archive_module

    original = archive_module._list_variables_used_by_fns

    def sorted_variables(fns):
        trainable, non_trainable = original(fns)
        return sorted(trainable, key=_variable_key), sorted(non_trainable, key=_variable_key)

    archive_module._list_variables_used_by_fns = sorted_variables
    try:
        yield
    finally:
        archive_module._list_variables_used_by_fns = original


def _variable_key(variable) -> str:
    return getattr(variable, "path", None) or variable.name


def _fix_fingerprint_uuid(out_dir: Path) -> None:
    """fingerprint.pb carries a random UUID; derive it from the model's own hashes instead,
    so the same model gives the same bytes (the other fingerprint fields already do)."""
    from tensorflow.core.protobuf import fingerprint_pb2

    path = out_dir / "fingerprint.pb"
    if not path.exists():
        return
    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.ParseFromString(path.read_bytes())
    fingerprint.uuid = ""
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))


def write_warmup(contract, path: Path) -> Path:
    """TensorFlow Serving's warm-up file (SavedModel Warmup: a TFRecord of PredictionLog in
    `assets.extra/tf_serving_warmup_requests`): one request of a tile of zeros as Earth
    Engine sends it, which TensorFlow Serving runs before the version is AVAILABLE, so the
    container is healthy only once the model has answered. Deterministic bytes."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    tiles = {band: np.zeros_like(values) for band, values in contract.example_tiles(count=1).items()}
    (batch,) = contract.requests(tiles)
    if batch.body is not None:
        import json

        rows = json.loads(batch.body)["instances"]
        inputs = {name: [row[name] for row in rows] for name in rows[0]}
    else:
        inputs = batch.inputs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "model"
    request.model_spec.signature_name = SIGNATURE
    for name in sorted(inputs):
        value = inputs[name]
        if isinstance(value, np.ndarray) and value.dtype == object:
            value = [v.encode() if isinstance(v, str) else v for v in value.tolist()]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString(deterministic=True))
    return path
