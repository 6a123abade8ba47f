#!/bin/sh
# Vertex AI sets AIP_HTTP_PORT (the container spec's first port, 8080) and AIP_STORAGE_URI
# (a gs:// copy of the artifact, which holds the SavedModel as 1/). TensorFlow Serving
# reads gs:// itself, runs the version's warm-up requests, and only then listens.
if [ -z "${AIP_STORAGE_URI}" ]; then
    echo "ee-serving: AIP_STORAGE_URI is not set (Vertex AI sets it to the model's artifacts)" >&2
    exit 2
fi
# EEV_GRPC_PORT: for local runs that share one network (the rehearsal); Vertex AI gives
# each container its own, and sends gRPC to the container spec's grpcPorts (8500).
exec tensorflow_model_server --port="${EEV_GRPC_PORT:-8500}" --rest_api_port="${AIP_HTTP_PORT:-8080}" \
    --model_name=model --model_base_path="${AIP_STORAGE_URI%/}" "$@"
