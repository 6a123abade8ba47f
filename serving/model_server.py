"""The entrypoint of our PyTorch image (`python -m serving.model_server`): Vertex AI's Custom
Prediction Routine server, started as its own `__main__` starts it
(google/cloud/aiplatform/prediction/model_server.py: `set_number_of_workers_from_env()`, then
`uvicorn.run(...:CprModelServer, factory=True)` on `AIP_HTTP_PORT`), except that loading
workers are not killed.

With more than one worker (CPR's default: one per core, at least two), uvicorn's supervisor
pings every worker twice a second and kills one that has not answered within
`timeout_worker_healthcheck`, 5 s by default (uvicorn/supervisors/multiprocess.py,
`keep_subprocess_alive`), then starts another. A worker answers from a thread, and only once
it is running:
- workers are spawned, so each first imports the main module again (as `__mp_main__`). CPR's
  main module imports google.cloud.aiplatform: 3 s on an idle 2-core machine here, so more
  than 5 s on a busy one;
- then the worker builds the handler (download, `import torch`, load, warm-up tile), and
  parts of that hold the GIL, which the answering thread needs.
A worker still loading was killed, the next one too, and the deployment never became
healthy (the log says `Child process [...] died` over and over).

So this module imports only uvicorn, and workers get `WORKER_TIMEOUT` to answer. A worker
that hangs for that long is still killed and replaced.
"""

from __future__ import annotations

import os

import uvicorn

APP = "google.cloud.aiplatform.prediction.model_server:CprModelServer"
# Seconds a worker may go without answering the supervisor's ping: longer than a model load
# holds the GIL.
WORKER_TIMEOUT = 120


def main() -> None:
    # Imported here, in the supervisor only: workers import this module again, not this.
    from google.cloud.aiplatform.prediction.model_server import set_number_of_workers_from_env

    port = os.environ.get("AIP_HTTP_PORT", "")
    if not port.isdigit():
        raise SystemExit(f"AIP_HTTP_PORT must be a port number (Vertex AI sets it), not {port!r}")
    set_number_of_workers_from_env()  # WEB_CONCURRENCY, which uvicorn reads
    uvicorn.run(
        APP,
        host="0.0.0.0",
        port=int(port),
        factory=True,
        timeout_worker_healthcheck=WORKER_TIMEOUT,
    )


if __name__ == "__main__":
    main()
