"""The data source google_project, against Cloud Resource Manager v1 (projects.get)."""

from __future__ import annotations

from tf.iface import DataSource
from tf.schema import Schema
from tf.types import String

from provider.common import attr
from rehearsal.google_standin.base import Failed

_S = String()


class ProjectData(DataSource):
    """`data "google_project"`: the project's number (Cloud Resource Manager v1 projects.get)."""

    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls):
        return "project"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("project_id", _S, kind="optional"),
                attr("number", _S, kind="computed"),
                attr("name", _S, kind="computed"),
                attr("id", _S, kind="computed"),
            ],
        )

    def read(self, ctx, config):
        project = config.get("project_id") or self.provider.settings["project"]
        try:
            found = self.provider.call(
                "GET", self.provider.endpoint("resource_manager_custom_endpoint", f"projects/{project}")
            )
        except Failed as error:
            ctx.diagnostics.add_error(str(error), "")
            return None
        return {
            **config,
            "project_id": project,
            "number": found["projectNumber"],
            "name": found.get("name"),
            "id": f"projects/{project}",
        }
