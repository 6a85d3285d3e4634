"""FixtureTenantProvider: determinism, paging, injected faults, config loading, real crashes."""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from opsrecon_dagster.providers.base import (
    EnvironmentRef,
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
    TenantProvider,
)
from opsrecon_dagster.providers.fixture import (
    DEFAULT_FIXTURE_FILE,
    CallPoint,
    FileGate,
    FixtureConfig,
    FixtureConfigError,
    FixtureEnvironment,
    FixtureFaults,
    FixtureTenantProvider,
)

ENV = EnvironmentRef("acme", "contoso", "acme.contoso")
OTHER_ENV = EnvironmentRef("acme", "other", "acme.other")
DEVICE = "deviceConfigurations"
COMPLIANCE = "compliancePolicies"
APP = "appProtectionPolicies"
REPO_ROOT = Path(__file__).resolve().parents[2]


def provider_for(
    env: FixtureEnvironment | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
    **config: object,
) -> FixtureTenantProvider:
    """A provider whose ``ENV`` has the given configuration."""
    environments = {ENV.partition_key: env} if env is not None else {}
    cfg = FixtureConfig.model_validate({**config, "environments": environments})
    if sleep is None:
        return FixtureTenantProvider(cfg)
    return FixtureTenantProvider(cfg, sleep=sleep)


def faulty(**faults: object) -> FixtureTenantProvider:
    return provider_for(FixtureEnvironment(faults=FixtureFaults.model_validate(faults)))


def listing(
    provider: FixtureTenantProvider, policy_type: str, env: EnvironmentRef = ENV
) -> list[PolicyObject]:
    return list(provider.list_policies(env, policy_type))


def drain(objects: Iterable[PolicyObject], into: list[PolicyObject]) -> None:
    """Collect objects one by one, so those yielded before an error are kept."""
    for obj in objects:
        into.append(obj)


def test_implements_the_protocol() -> None:
    provider: TenantProvider = FixtureTenantProvider()
    assert isinstance(provider, TenantProvider)


def test_fixture_module_does_not_import_dagster() -> None:
    code = "import sys, opsrecon_dagster.providers.fixture\nprint('dagster' in sys.modules)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# -- determinism ---------------------------------------------------------------------------


def test_same_inputs_give_identical_objects() -> None:
    first, second = FixtureTenantProvider(), FixtureTenantProvider()
    for policy_type in (DEVICE, COMPLIANCE, APP):
        assert listing(first, policy_type) == listing(second, policy_type)
    assert [o.display_name for o in listing(first, DEVICE)][2] == "Device Configurations 03"


def test_seed_and_environment_change_ids_and_hashes() -> None:
    base = listing(FixtureTenantProvider(), DEVICE)
    reseeded = listing(FixtureTenantProvider(FixtureConfig(seed=8)), DEVICE)
    elsewhere = listing(FixtureTenantProvider(), DEVICE, env=OTHER_ENV)
    for other in (reseeded, elsewhere):
        assert len(other) == len(base)
        assert not {o.external_id for o in base} & {o.external_id for o in other}
        assert not {o.content_hash for o in base} & {o.content_hash for o in other}
        # Names are human readable and depend only on type and index.
        assert [o.display_name for o in other] == [o.display_name for o in base]


def test_object_shape_and_counts() -> None:
    provider = FixtureTenantProvider()
    objects = listing(provider, APP)
    assert len(objects) == 3
    assert len(listing(provider, DEVICE)) == 6
    assert len(listing(provider, COMPLIANCE)) == 4
    for obj in objects:
        assert obj.policy_type == APP
        assert obj.external_id.startswith("app-")
        assert len(obj.external_id) == len("app-") + 12
        assert len(obj.content_hash) == 64
    assert [o.display_name for o in objects] == [
        "App Protection Policies 01",
        "App Protection Policies 02",
        "App Protection Policies 03",
    ]


def test_unknown_policy_type_has_no_objects() -> None:
    provider = FixtureTenantProvider()
    assert listing(provider, "noSuchType") == []
    with pytest.raises(ProviderError) as err:
        provider.fetch_policy(ENV, "noSuchType", "nos-000000000000")
    assert err.value.kind is ProviderErrorKind.NOT_FOUND


def test_per_environment_policy_types_override_defaults() -> None:
    provider = provider_for(FixtureEnvironment(policy_types={DEVICE: 2}))
    assert len(listing(provider, DEVICE)) == 2
    assert listing(provider, COMPLIANCE) == []
    assert len(listing(provider, COMPLIANCE, env=OTHER_ENV)) == 4
    assert provider.policy_types(ENV.partition_key) == {DEVICE: 2}


# -- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "page_size", "pages"),
    [(0, 5, [0]), (5, 5, [5]), (6, 5, [5, 1]), (11, 5, [5, 5, 1]), (3, 1, [1, 1, 1])],
)
def test_listing_is_served_page_by_page(count: int, page_size: int, pages: list[int]) -> None:
    events: list[str] = []
    provider = provider_for(
        FixtureEnvironment(
            policy_types={DEVICE: count}, faults=FixtureFaults(slow_page_seconds=0.25)
        ),
        sleep=lambda seconds: events.append(f"sleep {seconds}"),
        page_size=page_size,
    )
    for _ in provider.list_policies(ENV, DEVICE):
        events.append("item")
    expected: list[str] = []
    for size in pages:
        expected += ["sleep 0.25"] + ["item"] * size
    assert events == expected


def test_no_sleep_without_slow_pages() -> None:
    slept: list[float] = []
    provider = FixtureTenantProvider(sleep=slept.append)
    assert len(listing(provider, DEVICE)) == 6
    assert slept == []


# -- faults --------------------------------------------------------------------------------


def test_consent_missing_blocks_every_call() -> None:
    provider = faulty(consent_missing=True)
    good = listing(FixtureTenantProvider(), DEVICE)[0]
    calls: list[Callable[[], object]] = [
        lambda: listing(provider, DEVICE),
        lambda: listing(provider, "noSuchType"),
        lambda: provider.fetch_policy(ENV, DEVICE, good.external_id),
    ]
    for call in calls:
        with pytest.raises(ProviderError) as err:
            call()
        assert err.value.kind is ProviderErrorKind.CONSENT_MISSING
        assert err.value.kind.is_precondition
        assert err.value.status_code == 401
    # Other environments are unaffected.
    assert len(listing(provider, DEVICE, env=OTHER_ENV)) == 6


def test_permission_missing_only_for_listed_types() -> None:
    provider = faulty(permission_missing_types=[COMPLIANCE])
    obj = listing(FixtureTenantProvider(), COMPLIANCE)[0]
    for call in (
        lambda: listing(provider, COMPLIANCE),
        lambda: provider.fetch_policy(ENV, COMPLIANCE, obj.external_id),
    ):
        with pytest.raises(ProviderError) as err:
            call()
        assert err.value.kind is ProviderErrorKind.PERMISSION_MISSING
        assert err.value.kind.is_precondition
        assert (err.value.policy_type, err.value.status_code) == (COMPLIANCE, 403)
    assert len(listing(provider, DEVICE)) == 6
    assert len(listing(provider, APP)) == 3


@pytest.mark.parametrize(("count", "first_page"), [(6, 5), (3, 3), (0, 0)])
def test_throttled_type_yields_first_page_then_raises(count: int, first_page: int) -> None:
    provider = provider_for(
        FixtureEnvironment(
            policy_types={DEVICE: count, APP: 3}, faults=FixtureFaults(throttled_types=[DEVICE])
        )
    )
    received: list[PolicyObject] = []
    with pytest.raises(ProviderError) as err:
        drain(provider.list_policies(ENV, DEVICE), received)
    assert err.value.kind is ProviderErrorKind.THROTTLED
    assert (err.value.policy_type, err.value.status_code) == (DEVICE, 429)
    assert not err.value.kind.is_precondition
    assert received == listing(FixtureTenantProvider(), DEVICE)[:first_page]
    assert len(listing(provider, APP)) == 3
    # Fetching single objects of a throttled type still works.
    if received:
        assert provider.fetch_policy(ENV, DEVICE, received[-1].external_id) == received[-1]


def test_failing_items_fail_fetch_for_the_first_n_of_each_type() -> None:
    provider = faulty(failing_items=2)
    for policy_type in (DEVICE, APP):
        objects = listing(provider, policy_type)
        for obj in objects[:2]:
            with pytest.raises(ProviderError) as err:
                provider.fetch_policy(ENV, policy_type, obj.external_id)
            assert err.value.kind is ProviderErrorKind.UNAVAILABLE
            assert (err.value.policy_type, err.value.status_code) == (policy_type, 503)
        for obj in objects[2:]:
            assert provider.fetch_policy(ENV, policy_type, obj.external_id) == obj


def test_fetch_returns_the_listed_object() -> None:
    provider = FixtureTenantProvider()
    for policy_type in (DEVICE, COMPLIANCE, APP):
        for obj in listing(provider, policy_type):
            fetched = provider.fetch_policy(ENV, policy_type, obj.external_id)
            assert fetched == obj
            assert fetched.content_hash == obj.content_hash


def test_fetch_unknown_id_is_not_found() -> None:
    provider = FixtureTenantProvider()
    device_id = listing(provider, DEVICE)[0].external_id
    for policy_type, external_id in [(DEVICE, "dev-000000000000"), (COMPLIANCE, device_id)]:
        with pytest.raises(ProviderError) as err:
            provider.fetch_policy(ENV, policy_type, external_id)
        assert err.value.kind is ProviderErrorKind.NOT_FOUND
        assert err.value.status_code == 404
    # An id from another environment is not found here either.
    with pytest.raises(ProviderError):
        provider.fetch_policy(OTHER_ENV, DEVICE, device_id)


def test_duplicate_display_names_add_exactly_n_ambiguous_objects() -> None:
    provider = provider_for(FixtureEnvironment(duplicate_display_names={DEVICE: 2}))
    objects = listing(provider, DEVICE)
    plain = listing(FixtureTenantProvider(), DEVICE)
    assert len(objects) == len(plain) + 2
    assert objects[: len(plain)] == plain
    names = Counter(o.display_name for o in objects)
    assert names[plain[0].display_name] == 3
    assert all(n == 1 for name, n in names.items() if name != plain[0].display_name)
    extras = objects[len(plain) :]
    assert len({o.external_id for o in objects}) == len(objects)
    assert len({o.content_hash for o in objects}) == len(objects)
    for obj in extras:
        assert provider.fetch_policy(ENV, DEVICE, obj.external_id) == obj


def test_duplicates_of_a_type_without_objects_are_rejected() -> None:
    with pytest.raises(ValueError, match="no objects to duplicate"):
        FixtureConfig(
            environments={
                "a.b": FixtureEnvironment(
                    policy_types={DEVICE: 0}, duplicate_display_names={DEVICE: 1}
                )
            }
        )


def test_config_is_copied_and_frozen() -> None:
    faults = FixtureFaults(throttled_types=[])
    config = FixtureConfig(environments={ENV.partition_key: FixtureEnvironment(faults=faults)})
    provider = FixtureTenantProvider(config)
    faults.throttled_types.append(DEVICE)  # mutating the caller's object must not leak in
    assert len(listing(provider, DEVICE)) == 6
    with pytest.raises(ValueError, match="frozen"):
        provider.config.seed = 9  # type: ignore[misc]


# -- faults at call points: crash_at and pause_at ------------------------------------------

SECOND_LISTING = CallPoint(call="list_policies", number=2)

CRASH_CHILD = textwrap.dedent(
    """
    from opsrecon_dagster.providers.base import EnvironmentRef
    from opsrecon_dagster.providers.fixture import FixtureConfig, FixtureTenantProvider
    env = EnvironmentRef("acme", "contoso", "acme.contoso")
    other = EnvironmentRef("acme", "other", "acme.other")
    provider = FixtureTenantProvider(FixtureConfig.model_validate({"environments": {
        env.partition_key: {"faults": {"crash_at": {"call": "list_policies", "number": 2}}},
    }}))
    list(provider.list_policies(other, "compliancePolicies"))  # another environment
    list(provider.list_policies(other, "compliancePolicies"))
    [first, second, *_] = provider.list_policies(env, "deviceConfigurations")  # call 1
    provider.fetch_policy(env, "deviceConfigurations", first.external_id)  # another method
    provider.fetch_policy(env, "deviceConfigurations", second.external_id)
    print("passed the other calls", flush=True)
    listing = provider.list_policies(env, "compliancePolicies")  # a generator: not called yet
    print("second listing created", flush=True)
    try:
        for obj in listing:  # its first page is asked for: call 2
            print("served", obj.external_id, flush=True)
    finally:
        print("finally ran", flush=True)
    print("survived", flush=True)
    """
)


def test_crash_at_really_kills_the_process_just_before_that_call() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "passed the other calls" in result.stdout
    assert "second listing created" in result.stdout
    assert "served" not in result.stdout  # killed before the call served anything
    assert "survived" not in result.stdout
    assert "finally ran" not in result.stdout  # no cleanup ran: a real kill, not an exception
    assert "Traceback" not in result.stderr
    assert "killing process" in result.stderr
    assert "before list_policies#2 of acme.contoso" in result.stderr


def _pausing(
    tmp_path: Path, point: CallPoint, *, gate_timeout_seconds: float = 600.0
) -> FixtureTenantProvider:
    """A provider whose ``ENV`` waits at its gate in ``tmp_path`` at ``point``."""
    return provider_for(
        FixtureEnvironment(faults=FixtureFaults(pause_at=point)),
        gate_dir=str(tmp_path),
        gate_timeout_seconds=gate_timeout_seconds,
    )


def test_pause_at_waits_at_its_gate_until_released(tmp_path: Path) -> None:
    provider = _pausing(tmp_path, SECOND_LISTING)
    listing(provider, DEVICE, env=OTHER_ENV)  # another environment: returns at once
    listing(provider, DEVICE, env=OTHER_ENV)
    listing(provider, DEVICE)  # the first call: returns at once
    served: list[PolicyObject] = []
    passed = threading.Event()

    def worker() -> None:
        drain(provider.list_policies(ENV, COMPLIANCE), served)
        passed.set()

    thread = threading.Thread(target=worker)
    thread.start()
    gate = FileGate(tmp_path, ENV.partition_key, "list_policies#2")  # the string form
    assert gate == FileGate(tmp_path, ENV.partition_key, SECOND_LISTING)
    assert gate.wait_reached(timeout=30)
    assert (tmp_path / "acme.contoso.list_policies#2.reached").exists()
    assert not passed.is_set()  # reached, and held there
    assert served == []  # before the call served anything
    gate.release()
    thread.join(timeout=30)
    assert passed.is_set()
    assert len(served) == 4  # then served as usual


def test_a_gate_nobody_opens_lets_the_worker_go_on(tmp_path: Path) -> None:
    point = CallPoint(call="fetch_policy", number=1)
    provider = _pausing(tmp_path, point, gate_timeout_seconds=0.2)
    [first, *_] = listing(provider, DEVICE)
    assert provider.fetch_policy(ENV, DEVICE, first.external_id) == first  # after the timeout
    assert (tmp_path / f"{ENV.partition_key}.fetch_policy#1.reached").exists()


def test_the_nth_call_is_counted_per_environment_method_and_provider(tmp_path: Path) -> None:
    """``pause_at`` (with a short gate timeout) leaves a ``.reached`` file exactly when the
    point is reached: that file shows which call is the environment's Nth."""
    reached = tmp_path / f"{ENV.partition_key}.list_policies#2.reached"

    def calls_then_reached(call: Callable[[], object]) -> bool:
        call()
        was_reached = reached.exists()
        reached.unlink(missing_ok=True)
        return was_reached

    provider = _pausing(tmp_path, SECOND_LISTING, gate_timeout_seconds=0.05)
    [first, *_] = listing(provider, DEVICE)  # ENV's listing 1
    for _ in range(3):  # other environments and other methods do not count
        assert not calls_then_reached(lambda: listing(provider, DEVICE, env=OTHER_ENV))
        assert not calls_then_reached(lambda: provider.fetch_policy(ENV, DEVICE, first.external_id))
    assert calls_then_reached(lambda: listing(provider, APP))  # ENV's listing 2
    assert not calls_then_reached(lambda: listing(provider, APP))  # only once
    assert provider.calls[(ENV.partition_key, "list_policies")] == 3
    assert provider.calls[(OTHER_ENV.partition_key, "list_policies")] == 3

    fresh = _pausing(tmp_path, SECOND_LISTING, gate_timeout_seconds=0.05)  # counts anew
    assert not calls_then_reached(lambda: listing(fresh, DEVICE))
    assert calls_then_reached(lambda: listing(fresh, DEVICE))


def test_calls_other_than_the_point_are_served_as_usual() -> None:
    provider = faulty(crash_at={"call": "fetch_policy", "number": 1})
    for _ in range(3):
        listing(provider, DEVICE)
    [first, *_] = listing(provider, DEVICE, env=OTHER_ENV)
    assert provider.fetch_policy(OTHER_ENV, DEVICE, first.external_id) == first
    [first, *_] = listing(FixtureTenantProvider(), DEVICE)
    FixtureTenantProvider().fetch_policy(ENV, DEVICE, first.external_id)


def test_a_call_point_has_a_file_name_safe_string_form() -> None:
    point = CallPoint(call="fetch_policy", number=12)
    assert str(point) == "fetch_policy#12"
    assert CallPoint.parse("fetch_policy#12") == point
    assert "/" not in str(point) and " " not in str(point)
    for bad in ("inventory.after_first_type", "list_policies", "list_policies#0", "x#1", "#2"):
        with pytest.raises(ValueError, match="not a call point"):
            CallPoint.parse(bad)
    with pytest.raises(ValueError, match="not a call point"):
        FileGate(Path("gates"), ENV.partition_key, "inventory.after_first_type")


def _clean_config_error(path: Path) -> str:
    """Loading ``path`` fails with one clean line (no traceback, no pydantic, no chained
    cause); returns it."""
    with pytest.raises(FixtureConfigError) as err:
        FixtureTenantProvider.from_file(path)
    message = str(err.value)
    assert "\n" not in message
    assert "Traceback" not in message
    assert "pydantic" not in message
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
    return message


@pytest.mark.parametrize(
    ("crash_at", "expected"),
    [
        ('"inventory.after_first_type"', "crash_at: a call point is an object such as"),
        ('{"call": "checkpoint", "number": 2}', "crash_at.call: Input should be 'list_policies'"),
        ('{"call": "list_policies", "number": 0}', "crash_at.number: Input should be greater"),
        ('{"call": "list_policies", "number": "2"}', "crash_at.number: Input should be a valid"),
        ('{"call": "list_policies", "number": true}', "crash_at.number: Input should be a valid"),
        ('{"call": "list_policies"}', "crash_at.number: Field required"),
        ('{"call": "list_policies", "number": 2, "n": 1}', "crash_at.n: Extra inputs"),
    ],
)
def test_a_bad_call_point_is_a_fixture_config_error(
    tmp_path: Path, crash_at: str, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(f'{{"environments": {{"a.b": {{"faults": {{"crash_at": {crash_at}}}}}}}}}')
    message = _clean_config_error(path)
    assert message.startswith(f"fixture file {path}: environments.a.b.faults.")
    assert expected in message


def test_the_protocol_and_the_package_have_no_fault_hook() -> None:
    """Faults live in the fixture provider's own calls: no job step calls a hook."""
    assert not hasattr(TenantProvider, "checkpoint")
    package = REPO_ROOT / "opsrecon_dagster"
    hooks = [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "checkpoint"
    ]
    assert hooks == []


# -- loading -------------------------------------------------------------------------------


def test_packaged_default_loads_with_the_demo_environments() -> None:
    provider = FixtureTenantProvider.default()
    config = provider.config
    assert (config.seed, config.page_size) == (7, 5)
    assert config.default_policy_types == {DEVICE: 6, COMPLIANCE: 4, APP: 3}
    assert set(config.environments) == {
        "acme.contoso",
        "acme.fabrikam",
        "acme.northwind",
        "globex.contoso",
        "globex.initech",
        "globex.stark",
        "globex.umbrella",
    }
    assert provider.environment_config("acme.fabrikam").faults.consent_missing
    northwind = provider.environment_config("acme.northwind")
    assert northwind.faults.throttled_types == [APP]
    assert northwind.faults.failing_items == 1
    assert northwind.duplicate_display_names == {DEVICE: 1}
    assert provider.policy_types("globex.contoso") == {DEVICE: 3, COMPLIANCE: 2}
    assert provider.environment_config("globex.initech").faults.permission_missing_types == [
        COMPLIANCE
    ]
    umbrella = provider.environment_config("globex.umbrella").faults
    assert (umbrella.crash_at, umbrella.slow_page_seconds) == (SECOND_LISTING, 0.2)
    assert provider.environment_config("globex.stark").faults.pause_at == SECOND_LISTING
    assert provider.config.gate_dir is None  # the packaged fixture never pauses by itself
    assert provider.environment_config("acme.contoso") == FixtureEnvironment()
    assert provider.environment_config("nowhere.at-all") == FixtureEnvironment()


def test_from_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"seed": 3, "environments": {"a.b": {"policy_types": {APP: 1}}}}))
    provider = FixtureTenantProvider.from_file(path)
    assert provider.config.seed == 3
    assert len(listing(provider, APP, env=EnvironmentRef("a", "b", "a.b"))) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"seed": 7,', "not valid JSON (line 1, column 12"),
        ("[1, 2]", "top level: Input should be a valid dictionary"),
        ('{"seed": 7, "colour": 1}', "colour: Extra inputs are not permitted"),
        (
            '{"environments": {"a.b": {"faults": {"consent_mising": true}}}}',
            "environments.a.b.faults.consent_mising: Extra inputs are not permitted",
        ),
        ('{"page_size": 0}', "page_size: Input should be greater than or equal to 1"),
        (
            '{"seed": "x", "page_size": 0}',
            "seed: Input should be a valid integer, unable to parse string as an integer "
            "(and 1 more problem(s))",
        ),
        (
            '{"environments": {"a.b": {"faults": {"slow_page_seconds": NaN}}}}',
            "slow_page_seconds: Input should be a finite number",
        ),
    ],
)
def test_from_file_errors_are_clean(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    message = _clean_config_error(path)
    assert message.startswith(f"fixture file {path}: ")
    assert expected in message


def test_from_file_missing_and_non_utf8(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(FixtureConfigError, match=r"nope\.json: cannot read the file \(No such"):
        FixtureTenantProvider.from_file(missing)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(FixtureConfigError, match="not UTF-8 text"):
        FixtureTenantProvider.from_file(binary)


def test_default_fixture_file_is_package_data() -> None:
    assert DEFAULT_FIXTURE_FILE.is_file()
    assert DEFAULT_FIXTURE_FILE.parent.name == "fixtures"
    assert DEFAULT_FIXTURE_FILE.parent.parent.name == "opsrecon_dagster"
