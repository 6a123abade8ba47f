"""Our Terraform provider for Vertex AI model upload, deployment and traffic (`eevertex`).

Runs from its own virtualenv (framework `tf`, protocol 6); see provider/install.py and the
docs/guides/terraform-provider.md (the reference: docs/provider.md, generated). Imports stay light:
Terraform starts the provider several times per plan.
"""

NAME = "eevertex"
HOST = "ee-vertex.local"
NAMESPACE = "ee"
VERSION = "0.1.0"
SOURCE = f"{HOST}/{NAMESPACE}/{NAME}"
