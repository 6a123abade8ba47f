"""Vertex AI regions that serve online predictions (models and endpoints).

Source: gcloud 528.0.0, `googlecloudsdk/command_lib/ai/constants.py`, `SUPPORTED_OP_REGIONS`
("Available regions specifically for online prediction, including endpoints and models"),
the list gcloud offers for `gcloud ai endpoints|models --region`; Google's page is
https://cloud.google.com/vertex-ai/docs/general/locations. A region newer than this list
is accepted with `allow_unlisted_region = true` on the target.
"""

from __future__ import annotations

PREDICTION_REGIONS = (
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-west12",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
)
