"""TensorFlow: a SavedModel whose serving signature takes Earth Engine's payload.

Keras models go through `Model.export()`'s machinery (keras.export.ExportArchive) so the
serving signature can be ours; any other tf.Module through `tf.saved_model.save()`.

Signatures per payload format (Earth Engine, "Hosted Model Payload Formats"):
- SERIALIZED_TF_TENSORS / GRPC_SERIALIZED_TF_TENSORS: one string input per band; each
  instance's value is a base64 serialized TensorProto [y, x]; outputs likewise, one per
  output band.
- GRPC_TF_TENSORS: one float32 input per band, [N, y, x]; float32 outputs per band.
- GRPC_SERIALIZED_TF_EXAMPLES: one string input named "input", a serialized tf.Example
  with one float list of y*x values per band.
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


def serving_function(spec: ModelSpec, payload_format: str, tile_size: int):
    """(function, input_signature) for the payload format."""
    import tensorflow as tf

    bands = spec.input_bands
    model = spec.model

    def predict(stacked):
        return _split_outputs(spec, tf.cast(model(stacked, training=False), tf.float32))

    if payload_format in ("SERIALIZED_TF_TENSORS", "GRPC_SERIALIZED_TF_TENSORS"):

        def decode(encoded):
            # Accept both base64 alphabets and missing padding; tf.io wants web-safe.
            websafe = tf.strings.regex_replace(tf.strings.regex_replace(encoded, r"\+", "-"), "/", "_")
            return tf.map_fn(
                lambda x: tf.ensure_shape(tf.io.parse_tensor(x, tf.float32), [None, None]),
                tf.io.decode_base64(websafe),
                fn_output_signature=tf.TensorSpec([None, None], tf.float32),
            )

        def encode(tensor):
            return tf.map_fn(
                lambda t: tf.io.encode_base64(tf.io.serialize_tensor(t)),
                tensor,
                fn_output_signature=tf.string,
            )

        def serve(inputs):
            stacked = tf.stack([decode(inputs[b]) for b in bands], axis=-1)
            return {name: encode(value) for name, value in predict(stacked).items()}

        signature = {b: tf.TensorSpec([None], tf.string, name=b) for b in bands}
    elif payload_format == "GRPC_TF_TENSORS":

        def serve(inputs):
            return predict(tf.stack([tf.cast(inputs[b], tf.float32) for b in bands], axis=-1))

        signature = {b: tf.TensorSpec([None, None, None], tf.float32, name=b) for b in bands}
    elif payload_format == "GRPC_SERIALIZED_TF_EXAMPLES":
        features = {b: tf.io.FixedLenFeature([tile_size, tile_size], tf.float32) for b in bands}

        def serve(inputs):
            parsed = tf.io.parse_example(inputs["input"], features)
            return predict(tf.stack([parsed[b] for b in bands], axis=-1))

        signature = {"input": tf.TensorSpec([None], tf.string, name="input")}
    else:
        raise ValueError(
            f"model.payload_format: {payload_format!r} is not served by TensorFlow artifacts; allowed: "
            "SERIALIZED_TF_TENSORS, GRPC_SERIALIZED_TF_TENSORS, GRPC_TF_TENSORS, GRPC_SERIALIZED_TF_EXAMPLES"
        )
    return serve, signature


def export_tensorflow(spec: ModelSpec, payload_format: str, tile_size: int, out_dir: Path) -> Path:
    """Write a SavedModel into out_dir (which must not exist yet)."""
    import keras
    import tensorflow as tf

    serve, signature = serving_function(spec, payload_format, tile_size)
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
