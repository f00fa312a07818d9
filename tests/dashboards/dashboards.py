"""The dashboard JSON files under dashboards/, read once, and the pieces the tests walk."""

import json
from dataclasses import dataclass

from clickhouse_http import REPO

DASHBOARD_DIR = REPO / "dashboards"
PROVISIONING_DIR = REPO / "config" / "grafana" / "provisioning"
PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE_REF = {"type": PLUGIN, "uid": "${datasource}"}


def load_all():
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


DASHBOARDS = load_all()
BY_UID = {board["uid"]: board for board in DASHBOARDS.values()}


def panels(board):
    """Every panel, including those nested in collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variables(board):
    return {variable["name"]: variable for variable in board.get("templating", {}).get("list", [])}


@dataclass
class PanelQuery:
    file: str
    uid: str
    panel: dict
    target: dict

    @property
    def key(self):
        return (self.uid, self.panel["title"])

    @property
    def id(self):
        title = self.panel["title"]
        same_title = [p for p in panels(BY_UID[self.uid]) if p["title"] == title]
        kind = f" ({self.panel['type']})" if len(same_title) > 1 else ""
        ref = "" if self.target.get("refId", "A") == "A" else f" #{self.target['refId']}"
        return f"{self.uid.removeprefix('convolog-')}/{title}{kind}{ref}"


def panel_queries():
    out = []
    for file, board in DASHBOARDS.items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                out.append(PanelQuery(file, board["uid"], panel, target))
    return out


@dataclass
class VariableQuery:
    uid: str
    variable: dict

    @property
    def id(self):
        return f"{self.uid.removeprefix('convolog-')}/${self.variable['name']}"


def variable_queries():
    return [
        VariableQuery(board["uid"], variable)
        for board in DASHBOARDS.values()
        for variable in variables(board).values()
        if variable["type"] == "query"
    ]


def field_links(panel):
    """(field name or None for every field, link) for each data link of a panel."""
    config = panel.get("fieldConfig", {})
    for link in config.get("defaults", {}).get("links", []):
        yield None, link
    for override in config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "links":
                for link in prop["value"]:
                    yield override["matcher"].get("options"), link


def override_fields(panel):
    """Field names the panel's byName overrides refer to."""
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override.get("matcher", {}).get("id") == "byName":
            yield override["matcher"]["options"]


def read_provisioning(name):
    return (PROVISIONING_DIR / name).read_text()

