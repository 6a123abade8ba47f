"""The model server of our PyTorch serving image: Vertex AI's Custom Prediction Routine (CPR)
server from `google-cloud-aiplatform[prediction]` (FastAPI on uvicorn, one worker process per
core), started by `serving/model_server.py` as CPR's own `__main__` starts it, with
`EarthEngineHandler` below as its handler (`HANDLER_MODULE=serving.pytorch_server`,
`HANDLER_CLASS=EarthEngineHandler`).

Vertex AI's custom-container contract ("Custom container requirements for prediction"), and
where each part is met:
- listen on `AIP_HTTP_PORT`, answer `AIP_HEALTH_ROUTE` and `AIP_PREDICT_ROUTE`: the CPR server
  reads all three (CPR's model_server.py `CprModelServer.__init__`; the port in
  serving/model_server.py as in CPR's `__main__`);
- fetch the artifacts from `AIP_STORAGE_URI` at start: `EarthEngineHandler.__init__`, with
  CPR's own `prediction_utils.download_model_artifacts`;
- healthy only once the model is loaded and has answered a warm-up tile: uvicorn calls the
  CPR factory, which builds this handler (download, load, warm-up), before it serves any
  route; a warm-up that fails ends the process, so the deployment fails instead of serving;
- bodies up to the contract's `max_payload_bytes` (Earth Engine's maxPayloadBytes, 1.5 MB on
  a shared public endpoint) are read, larger ones refused with 413: a body up to 10 MB (the
  largest Vertex AI passes on, on a dedicated endpoint: "Choose an endpoint type") is drained
  first, so the client reads the 413 instead of a broken pipe; a larger one is not read.

The artifact: `model.pt2` (a `torch.export` program, batch dimension dynamic, each tile the
configured size) and `ee_contract.json` (`serving.codec.Contract`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from serving import codec

PROGRAM_FILE = "model.pt2"
logger = logging.getLogger("ee-serving")


def serving_device() -> torch.device:
    """`EEV_DEVICE` if set, else the first GPU when there is one, else the CPU."""
    wanted = os.environ.get("EEV_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def _cpu_threads() -> int:
    """Intra-op threads per worker process: `EEV_TORCH_THREADS`, else the cores shared out
    among the server's worker processes (CPR sets WEB_CONCURRENCY), so that workers do not
    fight over cores."""
    if os.environ.get("EEV_TORCH_THREADS"):
        return max(1, int(os.environ["EEV_TORCH_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, int(os.environ.get("WEB_CONCURRENCY") or 1))
    return max(1, cores // workers)


class Model:
    """The exported program and its contract, on the serving device: bytes in, bytes out."""

    def __init__(self, folder: Path, device: torch.device | None = None):
        folder = Path(folder)
        self.contract = codec.Contract.read(folder / codec.CONTRACT_FILE)
        self.device = device or serving_device()
        if self.device.type == "cpu":
            torch.set_num_threads(_cpu_threads())
        program = torch.export.load(str(folder / PROGRAM_FILE))
        if self.device.type != "cpu":
            program = torch.export.passes.move_to_device_pass(program, self.device)
        self.module = program.module()
        # One forward pass at a time per process: torch's own threads do the parallel work.
        self._lock = threading.Lock()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """[N, bands, s, s] float32 -> the centre outputTileSize of the model's answer,
        [N, values, out, out], on the CPU."""
        tiles = torch.from_numpy(batch).to(self.device)
        with self._lock, torch.inference_mode():
            if self.contract.batch == 1:  # exported for one tile per call
                answers = [self.module(tiles[i : i + 1]) for i in range(len(tiles))]
                values = torch.cat(answers) if all(isinstance(a, torch.Tensor) for a in answers) else answers[0]
            else:
                values = self.module(tiles)
        if not isinstance(values, torch.Tensor):
            raise ValueError(f"the model answered a {type(values).__name__}; the artifact declares one tensor")
        answer = codec.crop(self.contract, values.detach().to("cpu").numpy())
        codec.check_answer(self.contract, answer)
        return answer

    def predict(self, body: bytes) -> bytes:
        """One request body -> the response body; RequestError for what the caller must fix."""
        batch = codec.decode(self.contract, codec.instances_of(body))
        return codec.dumps({"predictions": codec.predictions(self.contract, self.forward(batch))})

    def warm_up(self) -> float:
        """A tile of zeros through the whole path (decode, forward, encode); seconds taken."""
        side, bands = self.contract.instance_size, len(self.contract.input_bands)
        if self.contract.payload_format == "RAW_JSON":
            instance = {b: np.zeros((side, side)).astype(str).tolist() for b in self.contract.input_bands}
        else:
            instance = np.zeros((bands, side, side), np.float32).tolist()
        started = time.monotonic()
        self.predict(codec.dumps({"instances": [instance]}))
        return time.monotonic() - started


def fetch_artifacts(uri: str, into: Path) -> Path:
    """AIP_STORAGE_URI (gs://... as Vertex AI sets it, or a local folder) -> a local folder
    holding the artifact, with CPR's own downloader (which writes to the working folder)."""
    from google.cloud.aiplatform.utils import prediction_utils

    into.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    os.chdir(into)
    try:
        prediction_utils.download_model_artifacts(uri)
    finally:
        os.chdir(here)
    missing = [name for name in (PROGRAM_FILE, codec.CONTRACT_FILE) if not (into / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"AIP_STORAGE_URI {uri} holds no {', '.join(missing)}: it is not an artifact "
            "built for this image (nox -s build)"
        )
    return into


try:  # The CPR interface: present in the serving image and the project's environment.
    from fastapi import Request, Response
    from google.cloud.aiplatform.prediction.handler import Handler
except ImportError:  # pragma: no cover - Model alone needs only torch and numpy
    Handler = object


class EarthEngineHandler(Handler):
    """CPR handler: the model loaded and warmed up at construction, then one Earth Engine
    request per call."""

    def __init__(self, artifacts_uri: str | None, predictor=None):
        if not artifacts_uri:
            raise ValueError(
                "AIP_STORAGE_URI is not set: Vertex AI sets it to the model's artifacts; "
                "set it to a folder or gs:// URI holding model.pt2 and ee_contract.json"
            )
        started = time.monotonic()
        folder = fetch_artifacts(artifacts_uri, Path(tempfile.mkdtemp(prefix="ee-model-")))
        self.model = Model(folder)
        contract = self.model.contract
        warm = self.model.warm_up()
        logger.warning(
            "ee-serving: %s loaded from %s on %s in %.1fs (warm-up tile %.3fs); %s tiles of %dx%d, "
            "up to %d per request",
            contract.payload_format,
            artifacts_uri,
            self.model.device,
            time.monotonic() - started,
            warm,
            ", ".join(contract.input_bands),
            contract.instance_size,
            contract.instance_size,
            contract.max_instances,
        )

    async def handle(self, request: Request) -> Response:
        limit = self.model.contract.max_payload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            if int(declared) <= DRAIN_BYTES:
                async for _ in request.stream():  # read, not kept: the client then reads the answer
                    pass
            return _refusal(
                codec.RequestError(f"the request body has {int(declared):,} bytes, over maxPayloadBytes {limit:,}", 413)
            )
        body = await request.body()
        if len(body) > limit:
            return _refusal(
                codec.RequestError(f"the request body has {len(body):,} bytes, over maxPayloadBytes {limit:,}", 413)
            )
        from starlette.concurrency import run_in_threadpool

        try:
            # In a thread: the event loop keeps answering health checks during a forward pass.
            answer = await run_in_threadpool(self.model.predict, body)
        except codec.RequestError as error:
            return _refusal(error)
        return Response(content=answer, media_type="application/json")


DRAIN_BYTES = 10_000_000


def _refusal(error: codec.RequestError) -> Response:
    return Response(content=codec.error_body(error.message), status_code=error.status, media_type="application/json")
