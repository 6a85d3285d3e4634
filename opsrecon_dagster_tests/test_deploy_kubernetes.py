"""The Kubernetes route, validated as far as this machine can (no cluster, no Docker):

- ``deploy/Dockerfile`` lints: every instruction is one we use on purpose, every file it
  copies exists, it runs as a non-root user, its command serves the project's module, and
  the lock pins every runtime dependency it installs under ``--constraint``;
- ``deploy/helm/values.yaml`` parses against typed models of the sections we set (unknown keys
  are errors; ``test_deploy_helm_chart.py`` validates the same values against the chart's own
  vendored JSON schema), and agrees with the rest of the project: the same run queue lanes as
  ``deploy/dagster.postgres.yaml``, only configuration variables the code reads, and no
  secret as a plain value.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Literal

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the lock
from packaging.requirements import Requirement
from pydantic import BaseModel, ConfigDict, Field

from opsrecon_dagster.executors import BACKEND_VAR, BROKER_VAR, EXECUTOR_VAR, VISIBILITY_VAR
from opsrecon_dagster.resources import FIXTURE_PATH_VAR
from opsrecon_dagster.resources.configured import ALERT_VARS, APP_DB_VARS, PROVIDER_VARS

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
INSTANCE = ROOT / "deploy" / "dagster.postgres.yaml"
KNOWN_VARS = {
    *APP_DB_VARS.values(),
    *PROVIDER_VARS.values(),
    *ALERT_VARS.values(),
    FIXTURE_PATH_VAR,
    EXECUTOR_VAR,
    BROKER_VAR,
    BACKEND_VAR,
    VISIBILITY_VAR,
}
SECRET_VARS = {"OPSRECON_DATABASE_URL", "OPSRECON_PROVIDER_TOKEN", "OPSRECON_ALERT_WEBHOOK_URL"}


# -- Dockerfile ----------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_dockerfile_lints() -> None:
    steps = _instructions(DOCKERFILE.read_text())
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "FROM"
    assert set(kinds) <= {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "CMD"}
    base = steps[0][1]
    # Pinned by digest (the tag only names it for readers): every build starts from the same bytes.
    match = re.fullmatch(r"python:(3\.\d+)-slim@sha256:[0-9a-f]{64}", base)
    assert match, "the base image names its Python minor and is pinned by digest"
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, match[1].split("."))) >= tuple(map(int, minimum.split(".")))

    for kind, args in steps:
        if kind == "COPY":
            *sources, _target = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    [user] = [args for kind, args in steps if kind == "USER"]
    assert user.isdigit() and int(user) != 0, "runs as a numeric non-root user"
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    [install] = [args for kind, args in steps if kind == "RUN" and "pip install" in args]
    assert "--constraint requirements.lock ." in install

    [cmd] = [args for kind, args in steps if kind == "CMD"]
    command = json.loads(cmd)  # exec form: signals reach the server, not a shell
    tool = _pyproject()["tool"]
    assert isinstance(tool, dict)
    module = tool["dagster"]["module_name"]
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("--module-name") + 1] == module
    [expose] = [args for kind, args in steps if kind == "EXPOSE"]
    assert command[command.index("--port") + 1] == expose


def test_the_build_backend_is_pinned() -> None:
    """The image builds the package with the backend pyproject.toml names: pinned exactly."""
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    for spec in build["requires"]:
        requirement = Requirement(spec)
        assert [s.operator for s in requirement.specifier] == ["=="], f"{spec} is not pinned"


def test_the_image_carries_the_k8s_run_launcher() -> None:
    """The K8sRunLauncher imports dagster_k8s in the code server and run pods (this image): it is
    a runtime dependency, at the same release as the rest of Dagster."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    pins = {Requirement(s).name: str(Requirement(s).specifier) for s in project["dependencies"]}
    assert pins["dagster-k8s"] == pins["dagster-postgres"] == "==0.29.27"
    import dagster_k8s  # installed from the lock

    assert dagster_k8s.__version__ == "0.29.27"


def test_the_lock_pins_every_runtime_dependency_the_image_installs() -> None:
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pinned, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} vs {spec}"


# -- Helm values ---------------------------------------------------------------------------


class _Keys(BaseModel):
    """Sections of the chart's values: only its documented keys (the chart's JSON schema
    rejects others too)."""

    model_config = ConfigDict(extra="forbid")


class Image(_Keys):
    repository: str
    tag: str
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(alias="pullPolicy")


class EnvVar(_Keys):
    name: str
    value: str


class SecretRef(_Keys):
    name: str


class UserDeployment(_Keys):
    name: str
    image: Image
    dagster_api_grpc_args: list[str] = Field(alias="dagsterApiGrpcArgs")
    port: int
    env: list[EnvVar] = []
    env_secrets: list[SecretRef] = Field(default=[], alias="envSecrets")
    env_config_maps: list[SecretRef] = Field(default=[], alias="envConfigMaps")


class UserDeployments(_Keys):
    enabled: bool
    deployments: list[UserDeployment]


class SecretKeyRef(_Keys):
    name: str
    key: str


class EnvSource(_Keys):
    secret_key_ref: SecretKeyRef = Field(alias="secretKeyRef")


class EnvVarFromSecret(_Keys):
    name: str
    value_from: EnvSource = Field(alias="valueFrom")


class ContainerConfig(_Keys):
    env: list[EnvVarFromSecret] = []


class RunK8sConfig(_Keys):
    container_config: ContainerConfig = Field(alias="containerConfig")


class K8sRunLauncherConfig(_Keys):
    env_secrets: list[SecretRef] = Field(default=[], alias="envSecrets")
    env_config_maps: list[SecretRef] = Field(default=[], alias="envConfigMaps")
    run_k8s_config: RunK8sConfig | None = Field(default=None, alias="runK8sConfig")


class RunLauncherConfig(_Keys):
    k8s_run_launcher: K8sRunLauncherConfig = Field(alias="k8sRunLauncher")


class RunLauncher(_Keys):
    type: Literal["K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"]
    config: RunLauncherConfig


class TagValue(_Keys):
    apply_limit_per_unique_value: bool = Field(alias="applyLimitPerUniqueValue")


class TagLimit(_Keys):
    key: str
    value: TagValue | str | None = None
    limit: int


class QueuedConfig(_Keys):
    max_concurrent_runs: int = Field(alias="maxConcurrentRuns")
    tag_concurrency_limits: list[TagLimit] = Field(alias="tagConcurrencyLimits")
    dequeue_interval_seconds: int = Field(alias="dequeueIntervalSeconds")


class RunCoordinatorConfig(_Keys):
    queued_run_coordinator: QueuedConfig = Field(alias="queuedRunCoordinator")


class RunCoordinator(_Keys):
    enabled: bool
    type: Literal["QueuedRunCoordinator", "CustomRunCoordinator"]
    config: RunCoordinatorConfig


class RunMonitoring(_Keys):
    enabled: bool
    start_timeout_seconds: int = Field(alias="startTimeoutSeconds")
    poll_interval_seconds: int = Field(alias="pollIntervalSeconds")
    max_resume_run_attempts: int = Field(alias="maxResumeRunAttempts")


class Daemon(_Keys):
    run_coordinator: RunCoordinator = Field(alias="runCoordinator")
    run_monitoring: RunMonitoring = Field(alias="runMonitoring")


class PostgresService(_Keys):
    port: int


class Postgres(_Keys):
    enabled: bool
    postgresql_host: str = Field(alias="postgresqlHost")
    postgresql_username: str = Field(alias="postgresqlUsername")
    postgresql_database: str = Field(alias="postgresqlDatabase")
    service: PostgresService


class Global(_Keys):
    postgresql_secret_name: str = Field(alias="postgresqlSecretName")


class Webserver(_Keys):
    enable_read_only: bool = Field(alias="enableReadOnly")


class Ingress(_Keys):
    enabled: bool


class Values(_Keys):
    global_: Global = Field(alias="global")
    dagster_webserver: Webserver = Field(alias="dagsterWebserver")
    ingress: Ingress
    user_deployments: UserDeployments = Field(alias="dagster-user-deployments")
    run_launcher: RunLauncher = Field(alias="runLauncher")
    dagster_daemon: Daemon = Field(alias="dagsterDaemon")
    postgresql: Postgres
    generate_postgresql_password_secret: bool = Field(alias="generatePostgresqlPasswordSecret")


def _values() -> Values:
    return Values.model_validate(yaml.safe_load(VALUES.read_text()))


def test_the_helm_values_use_the_charts_documented_keys() -> None:
    values = _values()
    [deployment] = values.user_deployments.deployments
    tool = _pyproject()["tool"]
    assert isinstance(tool, dict)
    args = deployment.dagster_api_grpc_args
    assert args[args.index("--module-name") + 1] == tool["dagster"]["module_name"]
    [expose] = [a for k, a in _instructions(DOCKERFILE.read_text()) if k == "EXPOSE"]
    assert deployment.port == int(expose)
    assert values.run_launcher.type == "K8sRunLauncher"  # checks worker health
    assert not values.postgresql.enabled  # an existing server, not the bundled one
    # The same secret reaches the code server and every run pod.
    assert deployment.env_secrets == values.run_launcher.config.k8s_run_launcher.env_secrets
    # Viewers get a --read-only webserver; the read-write one has no chart ingress (operators
    # reach it through oauth2-proxy, deploy/k8s/access.yaml).
    assert values.dagster_webserver.enable_read_only
    assert not values.ingress.enabled
    # Dagster's storage password comes from a secret the README creates, not the values.
    assert not values.generate_postgresql_password_secret
    assert values.global_.postgresql_secret_name == "dagster-postgresql-secret"


def test_the_helm_values_agree_with_the_project() -> None:
    values = _values()
    [deployment] = values.user_deployments.deployments
    for variable in deployment.env:
        assert variable.name in KNOWN_VARS, f"{variable.name}: the code reads no such variable"
        assert variable.name not in SECRET_VARS, f"{variable.name} belongs in the secret"
    # Job steps connect with their own database login (a member of opsrecon_worker), from a
    # secret of their own, not with the code server's (a member of opsrecon_reconciler).
    run_pod = values.run_launcher.config.k8s_run_launcher.run_k8s_config
    assert run_pod is not None
    for from_secret in run_pod.container_config.env:
        assert from_secret.name in KNOWN_VARS, (
            f"{from_secret.name}: the code reads no such variable"
        )
    [database] = [v for v in run_pod.container_config.env if v.name == "OPSRECON_DATABASE_URL"]
    assert database.value_from.secret_key_ref.name not in {s.name for s in deployment.env_secrets}
    queue = values.dagster_daemon.run_coordinator.config.queued_run_coordinator
    instance = yaml.safe_load(INSTANCE.read_text())
    queued = instance["run_coordinator"]["config"]
    assert queue.max_concurrent_runs == queued["max_concurrent_runs"]
    assert queue.dequeue_interval_seconds == queued["dequeue_interval_seconds"]
    assert [
        (
            t.key,
            t.value.apply_limit_per_unique_value if isinstance(t.value, TagValue) else t.value,
            t.limit,
        )
        for t in queue.tag_concurrency_limits
    ] == [
        (t["key"], t["value"]["applyLimitPerUniqueValue"], t["limit"])
        for t in queued["tag_concurrency_limits"]
    ]
    monitoring = values.dagster_daemon.run_monitoring
    assert monitoring.start_timeout_seconds == instance["run_monitoring"]["start_timeout_seconds"]


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("dagster-user-deployments", "deployments", 0, "image", "pullPolicy"), "Sometimes"),
        (("dagster-user-deployments", "deployments", 0, "envSecret"), [{"name": "x"}]),
        (("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxRuns"), 3),
    ],
)
def test_a_misspelt_or_invalid_key_is_rejected(path: tuple[str | int, ...], bad: object) -> None:
    data = yaml.safe_load(VALUES.read_text())
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = bad
    with pytest.raises(ValueError, match=str(path[-1])):
        Values.model_validate(data)


def test_a_run_pod_connects_with_the_workers_database_login() -> None:
    """The run pod as the pinned dagster-k8s builds it from the values' run launcher config:
    the run pods' own login is an explicit env entry, the shared secret (holding the code
    server's login) only an envFrom source, and Kubernetes takes the explicit entry over a
    source's same variable."""
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
    )

    launcher = yaml.safe_load(VALUES.read_text())["runLauncher"]["config"]["k8sRunLauncher"]
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image="registry.example.com/opsrecon-dagster:0.1.0",
            dagster_home="/opt/dagster/dagster_home",
            env_secrets=[s["name"] for s in launcher["envSecrets"]],
        ),
        ["dagster", "api", "execute_run"],
        "dagster-run-1",
        UserDefinedDagsterK8sConfig(container_config=launcher["runK8sConfig"]["containerConfig"]),
    )
    [container] = job.spec.template.spec.containers
    [database] = [e for e in container.env if e.name == "OPSRECON_DATABASE_URL"]
    assert database.value is None
    assert database.value_from.secret_key_ref.name == "opsrecon-worker-db"
    assert database.value_from.secret_key_ref.key == "OPSRECON_DATABASE_URL"
    assert [source.secret_ref.name for source in container.env_from] == ["opsrecon-secrets"]
