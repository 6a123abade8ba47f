"""TorchServe handler for Vertex AI's prebuilt PyTorch images (`pytorch-*.2-4` and older),
while one is still used: it answers Earth Engine with the same code as our own server
(`serving.codec`, shipped beside it in model.mar as the package `serving`).

Vertex AI's prebuilt PyTorch container runs TorchServe with the JSON service envelope, so each
element of `data` is one instance of `{"instances": [...]}`; without the envelope (plain
TorchServe) the handler unwraps the request bodies itself.

On a GPU, TorchServe's BaseHandler loads the TorchScript model onto `cuda:<gpu_id>`
(`self.device`): the tiles go there, the outputs come back to the CPU before conversion.
"""

import gc
import logging
import os

import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.request_envelope.json import JSONEnvelope
from ts.utils.util import PredictionException

from serving import codec

logger = logging.getLogger(__name__)

# TorchServe's frontend turns a worker's 413 into a 507, so an oversized request says 422.
TOO_LARGE = 422


def _refused(error: codec.RequestError) -> PredictionException:
    return PredictionException(error.message, TOO_LARGE if error.status == 413 else error.status)


class EarthEngineHandler(BaseHandler):
    def initialize(self, context):
        super().initialize(context)
        model_dir = context.system_properties.get("model_dir")
        self.contract = codec.Contract.read(os.path.join(model_dir, codec.CONTRACT_FILE))
        self.torch_threads = int(os.environ.get("EEV_TORCH_THREADS", "0"))
        # Intra-op threads are a CPU setting; on a GPU they would only slow the host side.
        if self.torch_threads and self.device.type == "cpu":
            torch.set_num_threads(self.torch_threads)
        if self.device.type == "cpu":
            self.model = _for_cpu_inference(self.model)
        _strict_envelope()

    def preprocess(self, data):
        try:
            return torch.from_numpy(codec.decode(self.contract, data))
        except codec.RequestError as error:
            raise _refused(error) from None

    def inference(self, data, *args, **kwargs):
        # The model is on self.device (cuda:<gpu_id> on a GPU); answers come back to the
        # CPU here, so the conversion to lists never sees a device tensor.
        with torch.inference_mode():
            return self.model(data.to(self.device)).cpu()

    def postprocess(self, data):
        values = codec.crop(self.contract, data.numpy())
        codec.check_answer(self.contract, values)
        return codec.predictions(self.contract, values)

    def handle(self, data, context):
        self.context = context
        if _is_raw_request(data):
            # Plain TorchServe without the JSON envelope: one response per request.
            return [codec.dumps({"predictions": self._handle_instances(_instances(row))}) for row in data]
        return self._handle_instances(data)

    def _handle_instances(self, instances):
        # A large answer is tens of thousands of small lists; creating them sets off the
        # cyclic garbage collector again and again, each pass walking every live container
        # (the request's nested lists too). Nothing built here can form a cycle, so the
        # collector waits until the request is done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self.postprocess(self.inference(self.preprocess(instances)))
        finally:
            if collecting:
                gc.enable()


def _for_cpu_inference(model):
    """TorchScript frozen and optimized for CPU inference (oneDNN convolutions, folded
    batch norms): 2-3x faster convolutions; the model's own module if it cannot be."""
    if not isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        return torch.jit.optimize_for_inference(torch.jit.freeze(model.eval()))
    except Exception as error:  # noqa: BLE001 - any failure keeps the model as loaded
        logger.warning("serving the TorchScript model as loaded: freezing it failed (%s)", error)
        return model


def _parse_body(data):
    """One request of the JSON envelope -> its `instances`, or a 400 that says what is wrong.

    TorchServe's own JSONEnvelope indexes `["instances"][0]` unchecked, so an empty list, a
    body without `instances`, or a body that is not JSON (the worker then passes the raw
    bytes) would end as 503 "Prediction failed"."""
    body = (
        data.get("data")
        if isinstance(data, dict) and data.get("data") is not None
        else (data.get("body") if isinstance(data, dict) and "body" in data else data)
    )
    try:
        if isinstance(body, str):
            # TorchServe's worker decoded a JSON string; a body that is not JSON stays bytes.
            raise codec.RequestError('the request body must be {"instances": [...]}; got a JSON string')
        return codec.instances_of(body)
    except codec.RequestError as error:
        raise _refused(error) from None


def _strict_envelope():
    """Make the prebuilt container's JSON envelope answer 400 for malformed bodies (it runs
    before the handler, so this is the only place to check them), and write the answer
    with orjson where the image has it."""
    JSONEnvelope._from_json = lambda self, data: _parse_body(data)
    JSONEnvelope._to_json = lambda self, output: codec.dumps({"predictions": output})


def _is_raw_request(data):
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and set(data[0]) <= {"body", "data"}


def _instances(row):
    return _parse_body(row)
