"""CDK Terrain stacks: bucket, model, endpoint and deployment for every target."""
