"""Checkov on the synthesized stacks, with every exception named and explained.

`python -m plan.scan cdktf.out [--out review/checkov.json]` runs `checkov` (from $CHECKOV
or PATH) on the `cdk.tf.json` of each stack of the last synth (manifest.json) and fails on any
failed check, naming it. Standard library only: it runs with any interpreter and calls the
checkov of its own virtualenv (checkov's pins clash with TensorFlow's).

Two checks are not run where they cannot apply, and the scan says so every time:
- CKV2_GCP_33 "Vertex AI endpoint is private", everywhere: Earth Engine calls the endpoint
  through the public Vertex AI API (`ee.Model.fromVertexAi`); a private, VPC-peered endpoint
  cannot be reached by it. Who may call is restricted by IAM (`predict_members`).
- CKV2_GCP_24 "Vertex AI endpoint uses a CMK" and CKV_GCP_84 "Artifact Registry repositories
  are encrypted with Customer Supplied Encryption Keys", on targets with no `kms_key`: CMEK is
  a per-target choice; where a key is configured, the checks run and must pass.
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
CMEK_CHECKS = {
    "CKV2_GCP_24": "no kms_key configured for this target",
    "CKV_GCP_84": "no kms_key configured for this target",
}
# The resource type each exception is about: only stacks that declare one are listed.
CHECKED_TYPE = {
    "CKV2_GCP_33": "google_vertex_ai_endpoint",
    "CKV2_GCP_24": "google_vertex_ai_endpoint",
    "CKV_GCP_84": "google_artifact_registry_repository",
}


def uses_cmek(config: dict) -> bool:
    resources = config.get("resource", {})
    buckets = resources.get("google_storage_bucket", {}).values()
    endpoints = resources.get("google_vertex_ai_endpoint", {}).values()
    registries = resources.get("google_artifact_registry_repository", {}).values()
    return (
        any(b.get("encryption") for b in buckets)
        or any(e.get("encryption_spec") for e in endpoints)
        or any(r.get("kms_key_name") for r in registries)
    )


def target_of(path: Path) -> str:
    """The target a stack belongs to: stacks are named `<target>-<kind>`."""
    return path.parent.name.rsplit("-", 1)[0]


def checkov() -> str:
    exe = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not exe:
        raise SystemExit(
            "error: checkov not found: run `nox -s scan` (it installs checkov in its own "
            "virtualenv), or set $CHECKOV to a checkov executable"
        )
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


def current_stacks(outdir: Path) -> list[Path]:
    """The stacks of the last synth (its manifest.json), not whatever else lies in outdir."""
    manifest = outdir / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"error: {manifest} is missing: synthesize first (`nox -s synth -- CONFIG`)")
    stacks = json.loads(manifest.read_text())["stacks"]
    return [outdir / stacks[name]["synthesizedStackPath"] for name in sorted(stacks)]


def scan(outdir: Path) -> dict:
    stacks = current_stacks(outdir)
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
    result: dict[str, list[dict]] = {"passed": [], "failed": [], "parsing_errors": [], "not_run": []}
    for cmek, files in groups.items():
        if not files:
            continue
        skips = dict(NOT_APPLICABLE) if cmek else {**NOT_APPLICABLE, **CMEK_CHECKS}
        found = scan_group(files, skips)
        for key in ("passed", "failed", "parsing_errors"):
            result[key] += found[key]
        for check in found["passed"] + found["failed"]:
            check["resource"] = _address(check)
        for path in files:
            result["not_run"] += [
                {"check_id": c, "stack": path.parent.name, "reason": r}
                for c, r in sorted(skips.items())
                if CHECKED_TYPE[c] in declared[path]
            ]
    return result


def _address(check: dict) -> str:
    """checkov names some JSON resources `resource.<name>`: give them their Terraform address."""
    resource = check["resource"]
    if not resource.startswith("resource."):
        return resource
    name = resource.split(".", 1)[1]
    config = json.loads(Path(check["file_abs_path"]).read_text())
    types = [t for t, items in config.get("resource", {}).items() if name in items]
    return f"{types[0]}.{name}" if len(types) == 1 else resource


def _row(check: dict) -> str:
    stack = Path(check["file_path"]).parent.name
    return f"{check['check_id']:12} {stack:22} {check['resource']:40} {check['check_name']}"


def report(result: dict) -> list[str]:
    """Counts, every failure named (check, stack, resource, why), and what did not run."""
    lines = [
        f"checkov: {len(result['passed'])} passed, {len(result['failed'])} failed, "
        f"{len(result['parsing_errors'])} parsing errors"
    ]
    passed: dict[str, set[str]] = {}
    for check in result["passed"]:
        passed.setdefault(check["check_id"], set()).add(Path(check["file_path"]).parent.name)
    if passed:
        lines.append("  passed  " + ", ".join(f"{c} ({len(s)})" for c, s in sorted(passed.items())))
    for check in sorted(result["failed"], key=lambda c: (c["file_path"], c["check_id"])):
        lines.append(f"  FAILED  {_row(check)}")
        if check.get("guideline"):
            lines.append(f"          {check['guideline']}")
    for error in result["parsing_errors"]:
        lines.append(f"  PARSING ERROR {error}")
    reasons: dict[tuple[str, str], list[str]] = {}
    for item in result["not_run"]:
        reasons.setdefault((item["check_id"], item["reason"]), []).append(item["stack"])
    for (check_id, reason), stacks in sorted(reasons.items()):
        lines.append(f"  not run {check_id:12} {reason} ({', '.join(sorted(stacks))})")
    return lines


def run_scan(outdir: Path, out: Path | None) -> int:
    """Scan, print the report, write the full result to `out`; 1 on any finding."""
    result = scan(outdir)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
    print("\n".join(report(result)))
    if result["failed"] or result["parsing_errors"]:
        findings = sorted(
            {f"{c['check_id']} on {Path(c['file_path']).parent.name}/{c['resource']}" for c in result["failed"]}
        )
        print(
            f"error: checkov found {', '.join(findings) or 'parsing errors'}"
            + (f" (full report: {out})" if out else ""),
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plan.scan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outdir", type=Path, help="cdktf output folder (cdktf.out)")
    parser.add_argument("--out", type=Path, default=None, help="write the combined report here (JSON)")
    args = parser.parse_args(argv)
    return run_scan(args.outdir, args.out)


if __name__ == "__main__":
    sys.exit(main())
