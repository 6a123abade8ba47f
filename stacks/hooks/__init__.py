"""Hooks that Terraform's local-exec provisioners run: `python -m stacks.hooks <action>`."""
