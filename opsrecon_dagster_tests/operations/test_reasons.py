"""Every reason code the code can record has an English and a German message."""

from __future__ import annotations

import ast
from pathlib import Path

import opsrecon_dagster
from opsrecon_dagster.artifacts.common import READINESS_REASONS
from opsrecon_dagster.operations.reasons import MESSAGES, NO_PROOF_REASONS, message
from opsrecon_dagster.providers.base import ProviderErrorKind

PACKAGE = Path(opsrecon_dagster.__file__).parent


def recorded_reason_literals() -> set[str]:
    """String literals recorded as reasons: Proof(outcome, "code", ...), (RunOutcome.X, "code")
    pairs, reason_code= / missing_reason= arguments and returned codes, found in the source."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name == "Proof" and len(node.args) >= 2:
                    arg = node.args[1]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
                for kw in node.keywords:
                    if kw.arg in {"reason_code", "missing_reason"} and isinstance(
                        kw.value, ast.Constant
                    ):
                        found.add(str(kw.value.value))
            if (  # (RunOutcome.X, "code") pairs, as in the status tables
                isinstance(node, ast.Tuple)
                and len(node.elts) == 2
                and isinstance(node.elts[0], ast.Attribute)
                and getattr(node.elts[0].value, "id", "") == "RunOutcome"
                and isinstance(node.elts[1], ast.Constant)
            ):
                found.add(str(node.elts[1].value))
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant):
                value = node.value.value
                if isinstance(value, str) and "_" in value and value.islower():
                    found.add(value)
    return found


def test_every_recorded_reason_has_both_messages() -> None:
    codes = (
        recorded_reason_literals()
        | {k.value for k in ProviderErrorKind}
        | set(READINESS_REASONS.values())
        | NO_PROOF_REASONS
    )
    assert len(codes) > 30
    assert {"backup_all_items_captured", "baseline_snapshot_with_gaps"} <= codes
    missing = sorted(c for c in codes if c not in MESSAGES)
    assert missing == []
    for code in codes:
        en, de = MESSAGES[code]
        assert en.endswith(".")
        assert de.endswith(".")
        assert en != de


def test_message_language_and_fallback() -> None:
    assert message("backup_schedule_disabled") == "The backup schedule is disabled."
    assert message("backup_schedule_disabled", "de") == "Der Sicherungszeitplan ist deaktiviert."
    assert message("no_such_code") == "no_such_code"


def test_every_reason_says_what_to_do_next_in_both_languages() -> None:
    """A decision that needs attention names its next step (the CLI and the overview show
    it); only proven successes and runs still at work have none."""
    from opsrecon_dagster.operations.reasons import NEXT_STEPS, NO_STEP_NEEDED, next_step

    assert set(MESSAGES) - NO_STEP_NEEDED == set(NEXT_STEPS)
    for code, (en, de) in NEXT_STEPS.items():
        assert en.endswith(".") and de.endswith("."), code
        assert en != de, code
    assert next_step("environment_consent_missing", "de") == (
        "Erteilen Sie im Mandanten die Administratorzustimmung, dann die Umgebung als bereit "
        "markieren (`opsrecon environments readiness PARTITION ready`) und den Vorgang für "
        "diese Partition erneut ausführen."
    )
    assert next_step("inventory_all_types_covered") is None
    assert next_step(None) is None
