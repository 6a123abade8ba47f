"""CDK for Terraform stacks: bucket, model, endpoint and deployment for every target.

Nothing here imports cdktf at package import time: the provisioner hooks in
`stacks.hooks` run inside `terraform apply` and must start fast.
"""
