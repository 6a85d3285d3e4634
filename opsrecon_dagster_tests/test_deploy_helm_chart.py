"""The Helm values against the real chart, and the README's steps against the values.

- ``deploy/helm/values.yaml`` is merged over the official chart's default ``values.yaml`` as
  Helm merges them (maps deep-merged, lists and scalars replaced, ``null`` deletes a default)
  and validated with ``jsonschema`` against the chart's ``values.schema.json``, both vendored
  under ``deploy/helm/chart/`` (source commit in its ``NOTE.md``);
- on top, the project's stricter check: every key we set is one the chart knows (its schema
  or its defaults), where the chart's schema leaves some maps open;
- every secret and config map the merged values and ``deploy/k8s/access.yaml`` name is created
  by a step of the README's "Kubernetes" section, with the keys the chart reads.

Nothing here talks to a cluster or the network: the schema's references to Kubernetes object
definitions (kubernetesjsonschema.dev) are resolved locally (see ``_kubernetes_definitions``).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the lock
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "chart"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
ACCESS = ROOT / "deploy" / "k8s" / "access.yaml"
README = ROOT / "README.md"
K8S_DEFINITIONS = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"

# The Kubernetes objects the project's values fill in, by the API's field names and types
# (core/v1); the other definitions the chart's schema points at resolve to any object.
_NAME_REF = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "optional": {"type": "boolean"}},
}
_KNOWN_K8S = {
    "io.k8s.api.core.v1.EnvVar": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "value": {"type": "string"},
            "valueFrom": {"type": "object"},
        },
    },
    "io.k8s.api.core.v1.SecretEnvSource": _NAME_REF,
    "io.k8s.api.core.v1.ConfigMapEnvSource": _NAME_REF,
    "io.k8s.api.core.v1.LocalObjectReference": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
    },
}


# -- the chart's schema and Helm's merge ---------------------------------------------------


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _chart_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return defaults


def _project_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return values


def helm_merge(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of user values over a chart's defaults: maps merge key by key
    (recursively), anything else (lists included) is replaced, and a ``null`` override deletes
    the default."""
    if not (isinstance(defaults, dict) and isinstance(overrides, dict)):
        return copy.deepcopy(overrides)
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _external_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(K8S_DEFINITIONS):
            yield ref
        for value in node.values():
            yield from _external_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _external_refs(value)


def _kubernetes_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """A local stand-in for kubernetesjsonschema.dev's _definitions.json: every pointer the
    chart's schema uses, with the few objects above typed and the rest open."""
    document: dict[str, Any] = {}
    for ref in _external_refs(schema):
        *parents, leaf = ref.split("#", 1)[1].strip("/").split("/")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, _KNOWN_K8S.get(leaf, {}))
    return document


def _validator() -> Any:
    schema = _schema()
    # The chart's schema is draft-07 style ("definitions"), as Helm 3 reads it.
    resource = Resource.from_contents(_kubernetes_definitions(schema), default_specification=DRAFT7)
    registry: Registry[Any] = Registry().with_resource(K8S_DEFINITIONS, resource)
    return jsonschema.Draft7Validator(schema, registry=registry)


def _errors(values: dict[str, Any]) -> list[str]:
    merged = helm_merge(_chart_defaults(), values)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator().iter_errors(merged)
    ]


def test_helm_merge_is_helms() -> None:
    defaults = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "keep": True, "gone": 1}
    over = {"a": {"c": [3], "d": {"f": 2}}, "gone": None}
    assert helm_merge(defaults, over) == {
        "a": {"b": 1, "c": [3], "d": {"e": 1, "f": 2}},
        "keep": True,
    }


def test_the_vendored_chart_defaults_satisfy_its_schema() -> None:
    """The two vendored files belong together (a bad copy or a mismatched pair fails here)."""
    assert [e.message for e in _validator().iter_errors(_chart_defaults())] == []


def test_the_values_validate_against_the_charts_schema() -> None:
    assert _errors(_project_values()) == []


def _known(path: tuple[str | int, ...], schema: dict[str, Any], defaults: Any) -> bool:
    """Whether the chart knows the key at ``path``: its schema names it, or its defaults set
    it (the chart's templates read keys its schema leaves open, e.g. ``runMonitoring``)."""
    return _in_defaults(path, defaults) or _schema_knows(path, schema)


def _in_defaults(path: tuple[str | int, ...], defaults: Any) -> bool:
    node = defaults
    for step in path:
        if isinstance(node, list) and isinstance(step, int):
            if not node:
                return False
            node = node[0]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return False
    return True


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/definitions/"):
        node = {**schema["definitions"][node["$ref"].split("/")[-1]], "$ref": None}
    return node


def _schema_knows(path: tuple[str | int, ...], schema: dict[str, Any]) -> bool:
    candidates = [schema]
    for step in path:
        following = []
        for candidate in candidates:
            node = _resolve(candidate, schema)
            options = [node, *(_resolve(o, schema) for o in node.get("anyOf", []))]
            for option in options:
                if isinstance(step, int):
                    if isinstance(option.get("items"), dict):
                        following.append(option["items"])
                elif step in option.get("properties", {}):
                    following.append(option["properties"][step])
        if not following:
            return False
        candidates = following
    return True


def _leaf_paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _leaf_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaf_paths(value, (*path, index))


# Values whose content the chart leaves free-form or to Kubernetes (env entries, secret and
# config map references: typed by the schema check above; a run pod's raw container config,
# handed as it is to Dagster's K8sRunLauncher, whose secret references are checked below),
# and the tag limits.
_FREE_FORM = {
    *("env", "envSecrets", "envConfigMaps", "imagePullSecrets", "containerConfig"),
    *("tagConcurrencyLimits", "runMonitoring", "labels", "annotations"),
}


def _unknown_keys(values: dict[str, Any]) -> list[str]:
    schema, defaults = _schema(), _chart_defaults()
    unknown = []
    for path in _leaf_paths(values):
        if any(isinstance(step, str) and step in _FREE_FORM for step in path[:-1]):
            continue
        if not _known(path, schema, defaults):
            unknown.append(".".join(map(str, path)))
    return unknown


def test_the_values_set_only_keys_the_chart_knows() -> None:
    assert _unknown_keys(_project_values()) == []


# -- negative checks: each mutation of a copy of the values turns a check red ---------------


def _mutated(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    data = _project_values()
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "bad", "message"),
    [
        # misspelt keys, where the chart's schema closes the map
        (
            ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxRuns"),
            3,
            "maxRuns",
        ),
        (("dagsterWebserver", "enableReadonly"), True, "enableReadonly"),
        (("runLauncher", "config", "k8sRunLauncher", "envSecret"), [], "envSecret"),
        # wrong types and values
        (
            (
                "dagsterDaemon",
                "runCoordinator",
                "config",
                "queuedRunCoordinator",
                "maxConcurrentRuns",
            ),
            "sixteen",
            "sixteen",
        ),
        (("dagsterWebserver", "enableReadOnly"), "yes", "yes"),
        (("dagster-user-deployments", "deployments", 0, "port"), "3030", "3030"),
        (
            ("dagster-user-deployments", "deployments", 0, "image", "pullPolicy"),
            "Sometimes",
            "Sometimes",
        ),
        (("runLauncher", "type"), "K8sLauncher", "K8sLauncher"),
        (("generatePostgresqlPasswordSecret",), "false", "false"),
    ],
)
def test_the_charts_schema_rejects(path: tuple[str | int, ...], bad: object, message: str) -> None:
    errors = _errors(_mutated(path, bad))
    assert errors, f"{path} = {bad!r} passed the chart's schema"
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    "path",
    [
        # the chart's schema leaves these maps open: the project's own check closes them
        ("dagster-user-deployments", "deployments", 0, "envSecret"),
        ("dagsterDeamon",),
        ("postgresql", "postgresqlHostname"),
    ],
)
def test_a_key_the_chart_does_not_know_is_rejected(path: tuple[str | int, ...]) -> None:
    data = _mutated(path, [{"name": "opsrecon-secrets"}])
    assert ".".join(map(str, path)) in _unknown_keys(data)


# -- README steps against what the values and manifests reference ---------------------------


def _kubernetes_section(text: str) -> str:
    return text.split("\n## Kubernetes\n", 1)[1].split("\n## ", 1)[0]


def _commands(section: str) -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                commands.append(shlex.split(line))
    return commands


def created_by_readme(text: str) -> dict[tuple[str, str], set[str]]:
    """(kind, name) -> keys, for every ``kubectl create secret generic`` / ``kubectl create
    configmap`` of the README's Kubernetes steps."""
    created: dict[tuple[str, str], set[str]] = {}
    for words in _commands(_kubernetes_section(text)):
        if words[:3] == ["kubectl", "create", "secret"] and words[3] == "generic":
            kind, name, options = "secret", words[4], words[5:]
        elif words[:3] == ["kubectl", "create", "configmap"]:
            kind, name, options = "configmap", words[3], words[4:]
        else:
            continue
        keys = set()
        for option in options:
            flag, _, spec = option.partition("=")
            if flag in ("--from-literal", "--from-file"):
                key, _, source = spec.partition("=")
                keys.add(key)
                if flag == "--from-file":
                    assert (ROOT / source).is_file(), f"{option}: no such file"
        created[(kind, name)] = keys
    return created


def _key_refs(node: Any, kind: str) -> Iterator[dict[str, Any]]:
    """Every ``secretKeyRef`` (or ``configMapKeyRef``) anywhere below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == kind and isinstance(value, dict):
                yield value
            else:
                yield from _key_refs(value, kind)
    elif isinstance(node, list):
        for value in node:
            yield from _key_refs(value, kind)


def referenced_by_values(values: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(kind, name) -> keys the chart reads, for every secret and config map the merged values
    make the chart mount or read."""
    merged = helm_merge(_chart_defaults(), values)
    wanted: dict[tuple[str, str], set[str]] = {}

    def need(kind: str, name: str, *keys: str) -> None:
        wanted.setdefault((kind, name), set()).update(keys)

    holders = [merged["dagsterWebserver"], merged["dagsterDaemon"]]
    user_deployments = merged["dagster-user-deployments"]
    if user_deployments["enabled"]:
        holders += user_deployments["deployments"]
        for ref in user_deployments.get("imagePullSecrets", []):
            need("secret", ref["name"])
    launcher = merged["runLauncher"]
    holders.append(
        launcher["config"][
            {"K8sRunLauncher": "k8sRunLauncher"}.get(launcher["type"], "celeryK8sRunLauncher")
        ]
    )
    for holder in holders:
        for ref in holder.get("envSecrets", []):
            need("secret", ref["name"])
        for ref in holder.get("envConfigMaps", []):
            need("configmap", ref["name"])
    for ref in merged.get("imagePullSecrets", []):
        need("secret", ref["name"])
    for ref in _key_refs(merged, "secretKeyRef"):  # e.g. a run pod's own database login
        need("secret", ref["name"], ref["key"])
    if not merged["generatePostgresqlPasswordSecret"]:
        need("secret", merged["global"]["postgresqlSecretName"], "postgresql-password")
    workspace = merged["dagsterWebserver"]["workspace"]
    if workspace["enabled"] and workspace.get("externalConfigmap"):
        need("configmap", workspace["externalConfigmap"])
    if merged["ingress"]["enabled"]:
        for route in ("dagsterWebserver", "readOnlyDagsterWebserver", "flower"):
            tls = merged["ingress"][route]["tls"]
            if tls["enabled"]:
                need("secret", tls["secretName"])
    return wanted


def referenced_by_manifests(path: Path) -> dict[tuple[str, str], set[str]]:
    wanted: dict[tuple[str, str], set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "secretRef":
                    wanted.setdefault(("secret", value["name"]), set())
                elif key == "configMap" and isinstance(value, dict) and "name" in value:
                    wanted.setdefault(("configmap", value["name"]), set())
                elif key == "secretKeyRef":
                    wanted.setdefault(("secret", value["name"]), set()).add(value["key"])
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for document in yaml.safe_load_all(path.read_text()):
        walk(document)
    return wanted


def _missing(text: str, values: dict[str, Any]) -> list[str]:
    created = created_by_readme(text)
    wanted = referenced_by_values(values)
    for key, keys in referenced_by_manifests(ACCESS).items():
        wanted.setdefault(key, set()).update(keys)
    missing = []
    for (kind, name), keys in sorted(wanted.items()):
        if (kind, name) not in created:
            missing.append(f"{kind} {name}: no README step creates it")
        elif not keys <= created[(kind, name)]:
            missing.append(f"{kind} {name}: lacks {sorted(keys - created[(kind, name)])}")
    return missing


def test_the_readme_creates_every_secret_and_config_map_the_deployment_names() -> None:
    wanted = referenced_by_values(_project_values())
    assert ("secret", "opsrecon-secrets") in wanted
    assert wanted[("secret", "opsrecon-worker-db")] == {"OPSRECON_DATABASE_URL"}
    assert wanted[("secret", "dagster-postgresql-secret")] == {"postgresql-password"}
    assert _missing(README.read_text(), _project_values()) == []


def test_the_readme_steps_install_the_pinned_chart_with_the_values() -> None:
    commands = _commands(_kubernetes_section(README.read_text()))
    [helm] = [c for c in commands if c[:2] == ["helm", "upgrade"]]
    assert helm[helm.index("--version") + 1] == "1.13.27"  # = the pinned Dagster
    assert helm[helm.index("-f") + 1] == "deploy/helm/values.yaml"
    applied = [c[c.index("-f") + 1] for c in commands if c[:2] == ["kubectl", "apply"]]
    assert applied == ["deploy/k8s/access.yaml"]
    steps = [c[:3] for c in commands]
    # Secrets and config maps exist before the chart and the manifests that read them.
    assert max(i for i, s in enumerate(steps) if s[:2] == ["kubectl", "create"]) < min(
        i for i, s in enumerate(steps) if s[:2] in (["helm", "upgrade"], ["kubectl", "apply"])
    )


def test_a_missing_secret_step_is_caught() -> None:
    text = README.read_text()
    without_pg = re.sub(r"kubectl create secret generic dagster-postgresql-secret[^`]*", "", text)
    assert _missing(without_pg, _project_values()) == [
        "secret dagster-postgresql-secret: no README step creates it"
    ]
    wrong_key = text.replace("--from-literal=postgresql-password=", "--from-literal=password=")
    assert _missing(wrong_key, _project_values()) == [
        "secret dagster-postgresql-secret: lacks ['postgresql-password']"
    ]
    without_worker = re.sub(r"kubectl create secret generic opsrecon-worker-db[^`]*", "", text)
    assert _missing(without_worker, _project_values()) == [
        "secret opsrecon-worker-db: no README step creates it"
    ]
    without_proxy = re.sub(r"kubectl create secret generic oauth2-proxy-secrets[^`]*", "", text)
    assert "secret oauth2-proxy-secrets: no README step creates it" in _missing(
        without_proxy, _project_values()
    )


def test_a_new_secret_in_the_values_needs_a_readme_step() -> None:
    values = _mutated(("dagsterDaemon", "envSecrets"), [{"name": "daemon-secrets"}])
    assert _missing(README.read_text(), values) == [
        "secret daemon-secrets: no README step creates it"
    ]
