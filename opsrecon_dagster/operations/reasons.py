"""Every reason code the product records, with a message in English and German.

Reason codes are stable snake_case identifiers stored on runs and in evidence; messages are
for people and may be reworded freely.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "de"]
LANGUAGES: tuple[Language, ...] = ("en", "de")


class UnknownLanguageError(ValueError):
    """A language the product has no messages in."""


def parse_language(value: str | None) -> Language:
    """``en`` or ``de`` (case-insensitive); unset or empty means English."""
    if not value:
        return "en"
    lowered = value.strip().lower()
    for language in LANGUAGES:
        if lowered == language:
            return language
    raise UnknownLanguageError(f"unknown language {value!r}: use one of en, de")


MESSAGES: dict[str, tuple[str, str]] = {
    # inventory.sync
    "inventory_all_types_covered": (
        "Every requested policy type was synced.",
        "Alle angeforderten Richtlinientypen wurden synchronisiert.",
    ),
    "inventory_partial_coverage": (
        "Some policy types were synced, others failed.",
        "Einige Richtlinientypen wurden synchronisiert, andere sind fehlgeschlagen.",
    ),
    "inventory_access_missing": (
        "No policy type could be read: consent or permission is missing.",
        "Kein Richtlinientyp konnte gelesen werden: Zustimmung oder Berechtigung fehlt.",
    ),
    "inventory_no_type_covered": (
        "No policy type was synced.",
        "Kein Richtlinientyp wurde synchronisiert.",
    ),
    "inventory_no_coverage": (
        "The run recorded no inventory coverage.",
        "Der Lauf hat keine Inventarabdeckung aufgezeichnet.",
    ),
    # baseline.capture
    "baseline_snapshot_complete": (
        "The baseline snapshot captured every subject.",
        "Der Baseline-Snapshot hat alle Elemente erfasst.",
    ),
    "baseline_snapshot_with_gaps": (
        "The baseline snapshot is usable but has gaps.",
        "Der Baseline-Snapshot ist verwendbar, hat aber Lücken.",
    ),
    "baseline_capture_failed": (
        "The baseline snapshot captured nothing.",
        "Der Baseline-Snapshot hat nichts erfasst.",
    ),
    "baseline_no_snapshot": (
        "The run produced no baseline snapshot.",
        "Der Lauf hat keinen Baseline-Snapshot erzeugt.",
    ),
    "baseline_no_usable_inventory": (
        "There is no inventory to capture a baseline from.",
        "Es gibt kein Inventar, aus dem eine Baseline erfasst werden kann.",
    ),
    "baseline_profile_without_subjects": (
        "The baseline profile is missing or names no subjects.",
        "Das Baseline-Profil fehlt oder enthält keine Elemente.",
    ),
    # backup.schedule.execute
    "backup_all_items_captured": (
        "Every backup item was captured.",
        "Alle Sicherungselemente wurden erfasst.",
    ),
    "backup_some_items_failed": (
        "Some backup items failed.",
        "Einige Sicherungselemente sind fehlgeschlagen.",
    ),
    "backup_no_item_captured": (
        "No backup item was captured.",
        "Kein Sicherungselement wurde erfasst.",
    ),
    # backup.retention.prune
    "retention_enforced": (
        "No backup set beyond the schedule's retention is left; protected sets were kept.",
        "Keine Sicherung über die Aufbewahrung des Zeitplans hinaus ist übrig; "
        "geschützte Sicherungen wurden behalten.",
    ),
    "retention_not_enforced": (
        "Backup sets beyond the schedule's retention are still there.",
        "Sicherungen über die Aufbewahrung des Zeitplans hinaus sind noch vorhanden.",
    ),
    "retention_not_started": (
        "The retention run was never started by a worker.",
        "Der Aufbewahrungslauf wurde von keinem Worker gestartet.",
    ),
    "retention_pruned_protected_set": (
        "The run pruned a set that retention protects (one of the newest, or the newest "
        "complete one).",
        "Der Lauf hat eine geschützte Sicherung entfernt (eine der neuesten oder die neueste "
        "vollständige).",
    ),
    "backup_no_set": (
        "The run produced no backup set.",
        "Der Lauf hat keinen Sicherungssatz erzeugt.",
    ),
    "backup_schedule_disabled": (
        "The backup schedule is disabled.",
        "Der Sicherungszeitplan ist deaktiviert.",
    ),
    "backup_schedule_missing": (
        "The environment has no backup schedule.",
        "Die Umgebung hat keinen Sicherungszeitplan.",
    ),
    # environment.review.compose
    "review_composed": (
        "The run composed a ready review.",
        "Der Lauf hat eine fertige Überprüfung erstellt.",
    ),
    "review_reused": (
        "An existing review with the same fingerprint was reused.",
        "Eine vorhandene Überprüfung mit demselben Fingerabdruck wurde wiederverwendet.",
    ),
    "review_compose_failed": (
        "Composing the review failed.",
        "Das Erstellen der Überprüfung ist fehlgeschlagen.",
    ),
    "review_not_found": (
        "No review with the run's fingerprint exists.",
        "Es gibt keine Überprüfung mit dem Fingerabdruck des Laufs.",
    ),
    "review_no_inventory": (
        "There is no inventory to compose a review from.",
        "Es gibt kein Inventar, aus dem eine Überprüfung erstellt werden kann.",
    ),
    "review_fingerprint_missing": (
        "The run does not name a review fingerprint.",
        "Der Lauf nennt keinen Fingerabdruck für die Überprüfung.",
    ),
    "review_fingerprint_mismatch": (
        "The review's fingerprint is not the hash of its stored inputs; failing closed.",
        "Der Fingerabdruck der Überprüfung passt nicht zu ihren gespeicherten Eingaben; "
        "sicherheitshalber fehlgeschlagen.",
    ),
    # shared proof rules
    "proof_ambiguous": (
        "Several candidate artifacts disagree; failing closed.",
        "Mehrere mögliche Artefakte widersprechen sich; sicherheitshalber fehlgeschlagen.",
    ),
    "environment_consent_missing": (
        "Admin consent for the environment is missing.",
        "Die Administratorzustimmung für die Umgebung fehlt.",
    ),
    "environment_permission_missing": (
        "A required API permission for the environment is missing.",
        "Eine erforderliche API-Berechtigung für die Umgebung fehlt.",
    ),
    "environment_disabled": (
        "The environment is disabled.",
        "Die Umgebung ist deaktiviert.",
    ),
    # provider failures (per type or item)
    "provider_throttled": (
        "The provider throttled the request.",
        "Der Anbieter hat die Anfrage gedrosselt.",
    ),
    "provider_consent_missing": (
        "The provider refused the request: consent missing.",
        "Der Anbieter hat die Anfrage abgelehnt: Zustimmung fehlt.",
    ),
    "provider_permission_missing": (
        "The provider refused the request: permission missing.",
        "Der Anbieter hat die Anfrage abgelehnt: Berechtigung fehlt.",
    ),
    "provider_timeout": (
        "The provider did not answer in time.",
        "Der Anbieter hat nicht rechtzeitig geantwortet.",
    ),
    "provider_unavailable": ("The provider was unavailable.", "Der Anbieter war nicht erreichbar."),
    "provider_bad_response": (
        "The provider sent an unusable response.",
        "Der Anbieter hat eine unbrauchbare Antwort gesendet.",
    ),
    "provider_item_not_found": (
        "The provider no longer has this item.",
        "Der Anbieter hat dieses Element nicht mehr.",
    ),
    # job path
    "job_execution_error": (
        "The job failed with an execution error.",
        "Der Job ist mit einem Ausführungsfehler fehlgeschlagen.",
    ),
    "job_finished_without_proof": (
        "The job finished but its proof is missing.",
        "Der Job wurde beendet, aber der Nachweis fehlt.",
    ),
    # reconciliation
    "stale_without_proof": (
        "The run went stale and produced no proof.",
        "Der Lauf ist ohne Fortschritt geblieben und hat keinen Nachweis erzeugt.",
    ),
    "dagster_queue_wait_exceeded": (
        "The run waited in Dagster's run queue past its queue-wait limit and never started.",
        "Der Lauf hat länger als erlaubt in der Dagster-Warteschlange gewartet und nie begonnen.",
    ),
    "run_waiting_in_queue": (
        "No decision yet: the Dagster run is waiting in the run queue.",
        "Noch keine Entscheidung: Der Dagster-Lauf wartet in der Warteschlange.",
    ),
    "run_unreadable": (
        "The run's rows could not be read; it was finalized on its own.",
        "Die Daten des Laufs konnten nicht gelesen werden; er wurde einzeln abgeschlossen.",
    ),
    "queued_never_started": (
        "The run was queued but never started.",
        "Der Lauf wurde eingereiht, aber nie gestartet.",
    ),
    "dagster_run_failed_without_proof": (
        "The Dagster run failed and left no proof.",
        "Der Dagster-Lauf ist fehlgeschlagen und hat keinen Nachweis hinterlassen.",
    ),
    "dagster_run_canceled_without_proof": (
        "The Dagster run was canceled and left no proof.",
        "Der Dagster-Lauf wurde abgebrochen und hat keinen Nachweis hinterlassen.",
    ),
    "dagster_success_without_proof": (
        "The Dagster run succeeded, but the expected proof is missing.",
        "Der Dagster-Lauf war erfolgreich, aber der erwartete Nachweis fehlt.",
    ),
    "unsupported_type_stale": (
        "The run went stale; this operation type has no proof adapter.",
        "Der Lauf ist veraltet; für diesen Vorgangstyp gibt es keinen Nachweisadapter.",
    ),
    "run_scope_invalid": (
        "The run's workspace or environment no longer exists.",
        "Arbeitsbereich oder Umgebung des Laufs existieren nicht mehr.",
    ),
    "run_alive": (
        "No decision yet: the run is alive and not stale.",
        "Noch keine Entscheidung: Der Lauf ist aktiv und nicht veraltet.",
    ),
    "materialization_without_proof": (
        "A materialization names this run, but the run's artifacts do not exist.",
        "Eine Materialisierung nennt diesen Lauf, aber seine Artefakte existieren nicht.",
    ),
    "materialization_disagrees_with_proof": (
        "A materialization names this run with another outcome than its artifacts prove.",
        "Eine Materialisierung nennt diesen Lauf mit einem anderen Ergebnis, als seine "
        "Artefakte belegen.",
    ),
    "run_context_invalid": (
        "The run's stored context could not be read.",
        "Der gespeicherte Kontext des Laufs konnte nicht gelesen werden.",
    ),
}

# Every reconciler decision of "failed for lack of proof": a late report with the run's own
# proof corrects it once (docs/decisions.md). Proven and blocked outcomes are never corrected.
CORRECTABLE_REASONS = frozenset(
    {
        "stale_without_proof",
        "queued_never_started",
        "dagster_queue_wait_exceeded",
        "dagster_run_failed_without_proof",
        "dagster_run_canceled_without_proof",
        "dagster_success_without_proof",
        "materialization_without_proof",
    }
)
# Decisions with these reasons carry no proof (a late report with one of them corrects
# nothing): the reconciler's, and the job's own "finished without proof" answers.
NO_PROOF_REASONS = CORRECTABLE_REASONS | {
    "job_finished_without_proof",
    "job_execution_error",
    "inventory_no_coverage",
    "baseline_no_snapshot",
    "backup_no_set",
    "retention_not_enforced",
    "retention_not_started",
    "review_not_found",
}


def message(code: str, language: Language = "en") -> str:
    """The human message for a reason code; unknown codes fall back to the code itself."""
    pair = MESSAGES.get(code)
    if pair is None:
        return code
    return pair[0] if language == "en" else pair[1]


# Labels of the evidence fields (``operations.context.Evidence``) for people, English and
# German; the key itself stays the stable name in JSON.
EVIDENCE_LABELS: dict[str, tuple[str, str]] = {
    "workspace_id": ("Workspace id", "Arbeitsbereich-ID"),
    "managed_environment_id": ("Environment id", "Umgebungs-ID"),
    "artifact_kind": ("Artifact kind", "Artefaktart"),
    "artifact_ids": ("Artifact ids", "Artefakt-IDs"),
    "artifact_statuses": ("Artifact statuses", "Artefaktstatus"),
    "counts": ("Counts", "Anzahlen"),
    "fingerprint_prefix": ("Fingerprint (prefix)", "Fingerabdruck (Anfang)"),
    "considered_ids": ("Considered ids", "Geprüfte IDs"),
    "considered_total": ("Considered in total", "Insgesamt geprüft"),
    "rejected_wrong_scope": ("Rejected (wrong scope)", "Abgelehnt (falscher Bereich)"),
    "dagster_run_id": ("Dagster run id", "Dagster-Lauf-ID"),
    "dagster_run_status": ("Dagster run status", "Dagster-Laufstatus"),
    "materialization_count": ("Materializations", "Materialisierungen"),
    "artifact_created_at": ("Artifact created at", "Artefakt erstellt um"),
}


def evidence_label(key: str, language: Language = "en") -> str:
    """The label of an evidence field; unknown keys fall back to the key itself."""
    pair = EVIDENCE_LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if language == "en" else pair[1]
