"""Earth Engine, as the rehearsal plays it: the requests it sends for tiles of the config's
size, their answers checked against the model's own output (`EarthEngine`), and the same calls
made over and over while an apply runs (`PredictLoop`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.manifest import Manifest
from build_hooks.verify import reference
from config.rollout import RolloutConfig
from rehearsal.progress import RehearsalFailed, check
from serving.local import http_json


@dataclass
class Prediction:
    deployed_model_ids: list[str]
    """The deployed model that answered each request of the call."""
    bands: dict[str, np.ndarray]


class EarthEngine:
    """The requests Earth Engine sends for tiles of the config's own size (the one place
    that builds them: `build_hooks.earth_engine.Contract`), and the answers checked
    against the framework model's own output for the deployment that answered."""

    def __init__(self, vertex_url: str, config: RolloutConfig, manifest: Manifest, count: int = 2):
        self.vertex_url = vertex_url
        self.contract = ee.Contract.from_config(config.model, manifest)
        self.tiles = self.contract.example_tiles(count=count, seed=42)
        self.batches = self.contract.requests(self.tiles)

    @property
    def tile_size(self) -> int:
        return self.contract.tile_size

    def expected(self, config: RolloutConfig) -> dict[str, np.ndarray]:
        """What the model of this config answers for the tiles, cropped to the answer
        Earth Engine reads."""
        return reference(config, self.contract, self.tiles)

    def predict(self, endpoint: str, expected: dict[str, dict[str, np.ndarray]]) -> Prediction:
        """Send every request; `expected` maps each deployed-model ID that may answer to
        its model's answer."""
        ids, parts = [], []
        for batch in self.batches:
            status, body = http_json(f"{self.vertex_url}/v1/{endpoint}:predict", batch.rest_body(), timeout=120)
            if status != 200 or not isinstance(body, dict):
                raise RuntimeError(f"predict on {endpoint}: HTTP {status}: {str(body)[:300]}")
            answered = body["deployedModelId"]
            if answered not in expected:
                raise RehearsalFailed(
                    f"predict on {endpoint}: answered by {answered}, expected one of {sorted(expected)}"
                )
            bands = self.contract.read_predictions(batch, body["predictions"])
            for band, values in expected[answered].items():
                error = float(np.max(np.abs(bands[band] - values[batch.first : batch.first + batch.count])))
                check(error < 1e-4, f"{answered}: band {band} differs from its model's own output by {error:.2e}")
            ids.append(answered)
            parts.append(bands)
        return Prediction(ids, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]})


class PredictLoop:
    """Earth Engine calling the endpoint over and over while something else happens
    (an apply): every answer must come, from one of the expected deployments, and be right."""

    def __init__(self, earth_engine: EarthEngine, endpoint: str, expected: dict[str, dict[str, np.ndarray]]):
        self.earth_engine = earth_engine
        self.endpoint = endpoint
        self.expected = expected
        self.served: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.served += self.earth_engine.predict(self.endpoint, self.expected).deployed_model_ids
            except Exception as error:  # noqa: BLE001 - every failure is counted
                self.failures.append(str(error)[:200])

    def __enter__(self) -> PredictLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
