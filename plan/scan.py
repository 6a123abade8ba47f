"""Checkov on the synthesized stacks, with every exception named and explained.

`python -m plan.scan cdktf.out [--out review/checkov.json]` runs `checkov` (from $CHECKOV
or PATH) on each stack's `cdk.tf.json` and fails on any failed check. Standard library only,
so it runs in a virtualenv that holds nothing but checkov.

Two checks are not run where they cannot apply, and the scan says so every time:
- CKV2_GCP_33 "Vertex AI endpoint is private", everywhere: Earth Engine calls the endpoint
  through the public Vertex AI API (`ee.Model.fromVertexAi`); a private, VPC-peered endpoint
  cannot be reached by it. Who may call is restricted by IAM (`predict_members`).
- CKV2_GCP_24 "Vertex AI endpoint uses a CMK", on targets with no `kms_key`: CMEK is a
  per-target choice; where a key is configured, the check runs and must pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

NOT_APPLICABLE = {
    "CKV2_GCP_33": "Earth Engine reaches the endpoint only through the public Vertex AI API; "
    "access is limited by IAM (predict_members)",
}
CMEK_CHECKS = {"CKV2_GCP_24": "no kms_key configured for this target"}
# The resource type each exception is about: only stacks that declare one are listed.
CHECKED_TYPE = {"CKV2_GCP_33": "google_vertex_ai_endpoint", "CKV2_GCP_24": "google_vertex_ai_endpoint"}


def uses_cmek(config: dict) -> bool:
    resources = config.get("resource", {})
    buckets = resources.get("google_storage_bucket", {}).values()
    endpoints = resources.get("google_vertex_ai_endpoint", {}).values()
    return any(b.get("encryption") for b in buckets) or any(e.get("encryption_spec") for e in endpoints)


def target_of(path: Path) -> str:
    """The target a stack belongs to: stacks are named `<target>-<kind>`."""
    return path.parent.name.rsplit("-", 1)[0]


def checkov() -> str:
    exe = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not exe:
        raise SystemExit("checkov not found: install it (pip install checkov) or set $CHECKOV")
    return exe


def scan_group(files: list[Path], skips: dict[str, str]) -> dict:
    """One checkov run over these files; its JSON report."""
    argv = [checkov(), "--framework", "terraform_json", "--skip-download", "--compact", "-o", "json"]
    for path in files:
        argv += ["-f", str(path)]
    if skips:
        argv += ["--skip-check", ",".join(sorted(skips))]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"checkov failed ({done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    return {
        "passed": [c for r in reports for c in r.get("results", {}).get("passed_checks", [])],
        "failed": [c for r in reports for c in r.get("results", {}).get("failed_checks", [])],
        "parsing_errors": [e for r in reports for e in r.get("results", {}).get("parsing_errors", [])],
    }


def scan(outdir: Path) -> dict:
    stacks = sorted((outdir / "stacks").glob("*/cdk.tf.json"))
    groups: dict[bool, list[Path]] = {True: [], False: []}
    declared: dict[Path, set[str]] = {}
    cmek_targets: set[str] = set()
    for path in stacks:
        config = json.loads(path.read_text())
        declared[path] = set(config.get("resource", {}))
        if uses_cmek(config):
            cmek_targets.add(target_of(path))
    # A target configures CMEK for all its stacks at once (kms_key): if any of its stacks
    # uses a key, the CMEK checks run on every one of them.
    for path in stacks:
        groups[target_of(path) in cmek_targets].append(path)
    result = {"passed": [], "failed": [], "parsing_errors": [], "not_run": []}
    for cmek, files in groups.items():
        if not files:
            continue
        skips = dict(NOT_APPLICABLE) if cmek else {**NOT_APPLICABLE, **CMEK_CHECKS}
        found = scan_group(files, skips)
        for key in ("passed", "failed", "parsing_errors"):
            result[key] += found[key]
        for path in files:
            result["not_run"] += [{"check_id": c, "stack": path.parent.name, "reason": r}
                                  for c, r in sorted(skips.items()) if CHECKED_TYPE[c] in declared[path]]
    return result


def _row(check: dict) -> str:
    stack = Path(check["file_path"]).parent.name
    return f"{check['check_id']:12} {stack:22} {check['resource']:40} {check['check_name']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plan.scan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="cdktf output folder (cdktf.out)")
    parser.add_argument("--out", type=Path, default=None, help="write the combined report here (JSON)")
    args = parser.parse_args(argv)
    result = scan(args.outdir)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
    print(f"checkov: {len(result['passed'])} passed, {len(result['failed'])} failed, "
          f"{len(result['parsing_errors'])} parsing errors")
    for check in sorted(result["passed"], key=lambda c: (c["file_path"], c["check_id"])):
        print(f"  passed  {_row(check)}")
    for check in result["failed"]:
        print(f"  FAILED  {_row(check)}")
    reasons: dict[tuple[str, str], list[str]] = {}
    for item in result["not_run"]:
        reasons.setdefault((item["check_id"], item["reason"]), []).append(item["stack"])
    for (check_id, reason), stacks in sorted(reasons.items()):
        print(f"  not run {check_id:12} {reason} ({', '.join(stacks)})")
    return 1 if result["failed"] or result["parsing_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
