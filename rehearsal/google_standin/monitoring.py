"""google_monitoring_alert_policy, threshold conditions only, against Cloud Monitoring v3
(alertPolicies create/get/patch/delete). The real provider's `conditions` list is a set here."""

from __future__ import annotations

from tf.schema import Block, Schema
from tf.types import Bool, List, Map, Number, String

from provider.common import SingleBlock, attr, known
from rehearsal.google_standin.base import SetBlock, StandInResource, camel_keys, single_block, snake_keys

_S, _B = String(), Bool()
_AGGREGATION = Block(
    attributes=[
        attr("alignment_period", _S, kind="optional"),
        attr("per_series_aligner", _S, kind="optional"),
        attr("cross_series_reducer", _S, kind="optional"),
        attr("group_by_fields", List(_S), kind="optional"),
    ]
)
_THRESHOLD = SingleBlock(
    "condition_threshold",
    Block(
        attributes=[
            attr("filter", _S, kind="optional"),
            attr("denominator_filter", _S, kind="optional"),
            attr("comparison", _S, kind="required"),
            attr("duration", _S, kind="required"),
            attr("threshold_value", Number(), kind="optional"),
            attr("evaluation_missing_data", _S, kind="optional"),
        ],
        block_types=[
            SetBlock("aggregations", _AGGREGATION),
            SetBlock("denominator_aggregations", _AGGREGATION),
            single_block(
                "trigger", attr("count", Number(), kind="optional"), attr("percent", Number(), kind="optional")
            ),
        ],
    ),
)


class MonitoringAlertPolicy(StandInResource):
    """Conditions are stood in for as threshold conditions only (what the stacks declare)."""

    @classmethod
    def get_name(cls):
        return "monitoring_alert_policy"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("display_name", _S, kind="required"),
                attr("combiner", _S, kind="required"),
                attr("enabled", _B, kind="optional"),
                attr("notification_channels", List(_S), kind="optional"),
                attr("user_labels", Map(_S), kind="optional"),
                attr("severity", _S, kind="optional"),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("name", _S, kind="computed"),
                attr("id", _S, kind="computed"),
            ],
            block_types=[
                SetBlock(
                    "conditions",
                    Block(attributes=[attr("display_name", _S, kind="required")], block_types=[_THRESHOLD]),
                ),
                single_block(
                    "documentation",
                    attr("content", _S, kind="optional"),
                    attr("mime_type", _S, kind="optional"),
                    attr("subject", _S, kind="optional"),
                ),
            ],
        )

    def _project(self, state: dict) -> str:
        return state["project"] if known(state.get("project")) else self.provider.settings["project"]

    def _body(self, planned: dict) -> dict:
        conditions = planned.get("conditions") or []
        return camel_keys(
            {
                "display_name": planned["display_name"],
                "combiner": planned["combiner"],
                "enabled": planned.get("enabled") if planned.get("enabled") is not None else True,
                "notification_channels": planned.get("notification_channels"),
                "user_labels": planned.get("user_labels"),
                "severity": planned.get("severity"),
                "documentation": planned.get("documentation"),
                "conditions": conditions,
            }
        )

    def _state(self, found: dict, prior: dict) -> dict:
        planned = {c["display_name"]: c for c in prior.get("conditions") or []}
        conditions = (
            [
                snake_keys({k: v for k, v in c.items() if k != "name"}, planned.get(c.get("displayName")))
                for c in found.get("conditions") or []
            ]
            if planned
            else None
        )
        return {
            **prior,
            "project": self._project(prior),
            "name": found["name"],
            "id": found["name"],
            "display_name": found.get("displayName"),
            "combiner": found.get("combiner"),
            "enabled": found.get("enabled") if prior.get("enabled") is not None else prior.get("enabled"),
            "notification_channels": found.get("notificationChannels") or prior.get("notification_channels"),
            "user_labels": found.get("userLabels") or prior.get("user_labels"),
            "conditions": conditions or prior.get("conditions"),
        }

    def create(self, ctx, planned):
        def work():
            found = self.provider.call(
                "POST",
                self.provider.endpoint(
                    "monitoring_custom_endpoint", f"v3/projects/{self._project(planned)}/alertPolicies"
                ),
                body=self._body(planned),
            )
            return self._state(found, planned)

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call(
                "GET", self.provider.endpoint("monitoring_custom_endpoint", f"v3/{current['name']}")
            )
            return None if found is None else self._state(found, current)

        return self.run(ctx, work)

    def _update(self, current, planned):
        mask = "displayName,combiner,enabled,notificationChannels,userLabels,severity,documentation,conditions"
        found = self.provider.call(
            "PATCH",
            self.provider.endpoint("monitoring_custom_endpoint", f"v3/{current['name']}"),
            body=self._body(planned),
            params={"updateMask": mask},
        )
        return self._state(found, {**planned, "name": current["name"]})

    def delete(self, ctx, current):
        def work():
            self.provider.call("DELETE", self.provider.endpoint("monitoring_custom_endpoint", f"v3/{current['name']}"))

        return self.run(ctx, work)
