"""CDK Terrain (cdktn) stacks: bucket, model, endpoint and deployment for every target."""
