"""`python -m build_hooks.push CONFIG [TARGET ...]`: copy our serving images into each target's
Artifact Registry repository, by digest. Run it after the target's registry stack is applied
and before its model stack (the model upload names the image by digest, and Vertex AI reads
it then).

Promotion copies: every target's own repository (in its own project) receives the very
same bytes, so the digest that dev served is the digest prod serves; no target reads
another project's registry. Credentials: Application Default Credentials (`gcloud auth
application-default login`), as the user `oauth2accesstoken` with an access token.
"""

from __future__ import annotations

import argparse
import sys

from build_hooks.manifest import ManifestError, ServingImage, built_versions, read_manifest
from config.images import registry_host
from config.rollout import ConfigError, RolloutConfig, TargetConfig, load_config


def images_for(rollout: RolloutConfig, target: TargetConfig) -> list[ServingImage]:
    """Our images the target's model versions run (current artifact, and model.previous's
    while set), as recorded by the builds in artifact_dir."""
    own = rollout.own_image(target)
    if own is None:
        return []
    current = read_manifest(rollout.artifact_dir)
    wanted = [current.sha256] + ([rollout.model.previous.sha256] if rollout.model.previous else [])
    found = {}
    for manifest in [current] + built_versions(rollout.artifact_dir):
        if any(manifest.sha256.startswith(sha) for sha in wanted):
            image = manifest.serving_image(own.name)
            if image is not None:
                found.setdefault(image.digest, image)
    return list(found.values())


def push_target(rollout: RolloutConfig, target: TargetConfig, *, host: str | None = None, tls_verify: bool = True,
                token: str | None = None) -> list[str]:
    """Push the target's images to `<host>/<project>/<repository>` (host: the target region's
    Artifact Registry, or a registry standing in for it); the references pushed."""
    from serving.image import push

    repository = f"{host or registry_host(target.region)}/{target.project}/{target.image_repository}"
    return [push(image, repository, token=token, tls_verify=tls_verify) for image in images_for(rollout, target)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m build_hooks.push", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="rollout config")
    parser.add_argument("targets", nargs="*", help="target names (default: every target)")
    args = parser.parse_args(argv)
    from serving.image import ImageError, access_token

    try:
        rollout = load_config(args.config)
        names = [t.name for t in rollout.targets]
        unknown = sorted(set(args.targets) - set(names))
        if unknown:
            raise ConfigError(f"targets: {', '.join(unknown)}; allowed: {', '.join(names)}")
        chosen = [t for t in rollout.targets if not args.targets or t.name in args.targets]
        if not any(rollout.own_image(t) for t in chosen):
            print("push: no target of this config runs our serving image (prebuilt or custom images only)")
            return 0
        token = access_token()
        for target in chosen:
            for reference in push_target(rollout, target, token=token):
                print(f"push: {target.name}: {reference}")
    except (ConfigError, ManifestError, ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
