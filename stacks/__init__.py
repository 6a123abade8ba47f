"""CDK Terrain (cdktn) stacks: bucket, model, endpoint and deployment for every target.

Nothing here imports cdktn at package import time: the provisioner hooks in
`stacks.hooks` run inside `terraform apply` and must start fast.
"""
