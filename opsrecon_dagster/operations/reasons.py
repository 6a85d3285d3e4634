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
    "dagster_run_start_timed_out": (
        "The Dagster run was launched but did not start within Dagster's start timeout.",
        "Der Dagster-Lauf wurde gestartet, hat aber nicht innerhalb von Dagsters "
        "Startfrist begonnen.",
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
    "run_field_invalid": (
        "A stored field of the run (named in the evidence) holds a value that cannot be used.",
        "Ein gespeichertes Feld des Laufs (in den Nachweisen genannt) enthält einen "
        "unbrauchbaren Wert.",
    ),
}

# Every reconciler decision of "failed for lack of proof": a late report with the run's own
# proof corrects it once (docs/decisions.md). Proven and blocked outcomes are never corrected.
CORRECTABLE_REASONS = frozenset(
    {
        "stale_without_proof",
        "queued_never_started",
        "dagster_queue_wait_exceeded",
        "dagster_run_start_timed_out",
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


# Missing consent, whether the job's check or the provider found it: the same next step.
_GRANT_CONSENT = (
    "Grant admin consent in the tenant, then mark the environment ready (`opsrecon "
    "environments readiness PARTITION ready`) and re-run this operation for this "
    "partition.",
    "Erteilen Sie im Mandanten die Administratorzustimmung, dann die Umgebung als bereit "
    "markieren (`opsrecon environments readiness PARTITION ready`) und den Vorgang für "
    "diese Partition erneut ausführen.",
)

# What an operator does next about a decision with this reason, English and German: the
# CLI's `show`/`explain` and the overview's attention list end with it. Codes of a proven
# success, and those of a run still at work, need no step (``NO_STEP_NEEDED``).
_RERUN = ("re-run it for this partition", "führen Sie ihn für diese Partition erneut aus")
NEXT_STEPS: dict[str, tuple[str, str]] = {
    "inventory_partial_coverage": (
        "See which policy types failed (Evidence: counts); once the provider answers for "
        "them, re-run inventory_sync for this partition.",
        "Prüfen Sie, welche Richtlinientypen fehlschlugen (Nachweise: Anzahlen); sobald der "
        "Anbieter für sie antwortet, inventory_sync für diese Partition erneut ausführen.",
    ),
    "inventory_access_missing": (
        "Grant admin consent and read permission in the tenant, then mark the environment "
        "ready (`opsrecon environments readiness PARTITION ready`) and re-run inventory_sync "
        "for this partition.",
        "Erteilen Sie im Mandanten die Administratorzustimmung und Leserechte, dann die "
        "Umgebung als bereit markieren (`opsrecon environments readiness PARTITION ready`) "
        "und inventory_sync für diese Partition erneut ausführen.",
    ),
    "inventory_no_type_covered": (
        "Check the provider and the requested policy types, then re-run inventory_sync for "
        "this partition.",
        "Prüfen Sie den Anbieter und die angeforderten Richtlinientypen, dann inventory_sync "
        "für diese Partition erneut ausführen.",
    ),
    "baseline_snapshot_with_gaps": (
        "Review the gaps (missing, ambiguous, capture failed): sync inventory again or fix "
        "the profile's subjects, then re-run baseline_capture.",
        "Prüfen Sie die Lücken (fehlend, mehrdeutig, Erfassung fehlgeschlagen): Inventar neu "
        "synchronisieren oder die Elemente des Profils korrigieren, dann baseline_capture "
        "erneut ausführen.",
    ),
    "baseline_capture_failed": (
        "Re-run baseline_capture for this partition once the provider answers.",
        "Führen Sie baseline_capture für diese Partition erneut aus, sobald der Anbieter "
        "antwortet.",
    ),
    "baseline_no_usable_inventory": (
        "Run inventory_sync for this partition first, then baseline_capture.",
        "Führen Sie zuerst inventory_sync für diese Partition aus, dann baseline_capture.",
    ),
    "baseline_profile_without_subjects": (
        "Add subjects to the baseline profile, then re-run baseline_capture.",
        "Fügen Sie dem Baseline-Profil Elemente hinzu, dann baseline_capture erneut ausführen.",
    ),
    "backup_some_items_failed": (
        "See the failed items of the backup set; the next scheduled backup tries them again, "
        "or run backup.schedule.execute now.",
        "Prüfen Sie die fehlgeschlagenen Elemente des Sicherungssatzes; die nächste geplante "
        "Sicherung versucht sie erneut, oder führen Sie backup.schedule.execute jetzt aus.",
    ),
    "backup_no_item_captured": (
        "Check the provider and the environment's access, then run backup.schedule.execute again.",
        "Prüfen Sie den Anbieter und den Zugriff der Umgebung, dann backup.schedule.execute "
        "erneut ausführen.",
    ),
    "retention_not_enforced": (
        "Sets beyond retention remain: the next successful backup prunes them again.",
        "Sicherungen über die Aufbewahrung hinaus bleiben: die nächste erfolgreiche "
        "Sicherung entfernt sie erneut.",
    ),
    "retention_pruned_protected_set": (
        "A protected set was removed: check the schedule's retention settings and restore "
        "the set from elsewhere if it is needed.",
        "Eine geschützte Sicherung wurde entfernt: prüfen Sie die Aufbewahrung des Zeitplans "
        "und stellen Sie die Sicherung bei Bedarf anderweitig wieder her.",
    ),
    "backup_schedule_disabled": (
        "Enable the backup schedule if backups are wanted; the next window runs it.",
        "Aktivieren Sie den Sicherungszeitplan, wenn Sicherungen gewünscht sind; das nächste "
        "Zeitfenster führt ihn aus.",
    ),
    "backup_schedule_missing": (
        "Create a backup schedule for the environment, or pass an existing one (--schedule).",
        "Legen Sie einen Sicherungszeitplan für die Umgebung an oder geben Sie einen "
        "bestehenden an (--schedule).",
    ),
    "review_no_inventory": (
        "Run inventory_sync for this partition first, then compose the review.",
        "Führen Sie zuerst inventory_sync für diese Partition aus, dann die Bewertung erstellen.",
    ),
    "review_fingerprint_missing": (
        "Start the review with `opsrecon operations start environment.review.compose` (it "
        "records the fingerprint).",
        "Starten Sie die Bewertung mit `opsrecon operations start "
        "environment.review.compose` (das zeichnet den Fingerabdruck auf).",
    ),
    "review_fingerprint_mismatch": (
        "The stored review does not match its inputs: archive it (`opsrecon reviews archive "
        "ID`) and compose again.",
        "Die gespeicherte Bewertung passt nicht zu ihren Eingaben: archivieren Sie sie "
        "(`opsrecon reviews archive ID`) und erstellen Sie sie neu.",
    ),
    "proof_ambiguous": (
        "Several artifacts claim this run: inspect the artifact ids in the evidence, remove "
        "the duplicate, then re-run.",
        "Mehrere Artefakte beanspruchen diesen Lauf: prüfen Sie die Artefakt-IDs in den "
        "Nachweisen, entfernen Sie das Duplikat, dann erneut ausführen.",
    ),
    "environment_consent_missing": _GRANT_CONSENT,
    "environment_permission_missing": (
        "Grant the missing permission in the tenant, then mark the environment ready "
        "(`opsrecon environments readiness PARTITION ready`) and re-run this operation for "
        "this partition.",
        "Erteilen Sie im Mandanten die fehlende Berechtigung, dann die Umgebung als bereit "
        "markieren (`opsrecon environments readiness PARTITION ready`) und den Vorgang für "
        "diese Partition erneut ausführen.",
    ),
    "environment_disabled": (
        "If the environment should be managed, enable it (`opsrecon environments readiness "
        "PARTITION ready`), then re-run this operation.",
        "Wenn die Umgebung verwaltet werden soll, aktivieren Sie sie (`opsrecon environments "
        "readiness PARTITION ready`), dann den Vorgang erneut ausführen.",
    ),
    "provider_throttled": (
        "The provider throttled the requests: re-run later (the tenant's queue lane limits "
        "how many run at once).",
        "Der Anbieter hat die Anfragen gedrosselt: später erneut ausführen (die "
        "Warteschlange des Mandanten begrenzt gleichzeitige Läufe).",
    ),
    "provider_consent_missing": _GRANT_CONSENT,
    "provider_permission_missing": (
        "Grant the missing permission in the tenant, then re-run this operation for this "
        "partition.",
        "Erteilen Sie im Mandanten die fehlende Berechtigung, dann den Vorgang für diese "
        "Partition erneut ausführen.",
    ),
    "provider_timeout": (
        "Re-run once the provider answers in time.",
        "Erneut ausführen, sobald der Anbieter rechtzeitig antwortet.",
    ),
    "provider_unavailable": (
        "Re-run once the provider is available.",
        "Erneut ausführen, sobald der Anbieter erreichbar ist.",
    ),
    "provider_bad_response": (
        "The provider answered something unreadable: re-run; if it recurs, tell the "
        "provider's owner.",
        "Der Anbieter antwortete unlesbar: erneut ausführen; wiederholt es sich, den "
        "Betreiber des Anbieters informieren.",
    ),
    "provider_item_not_found": (
        "An item vanished between listing and reading: re-run to capture the current state.",
        "Ein Element verschwand zwischen Auflisten und Lesen: erneut ausführen, um den "
        "aktuellen Stand zu erfassen.",
    ),
    "job_execution_error": (
        "See the failing step in the Dagster run's log, fix the cause, then re-run this operation.",
        "Prüfen Sie den fehlgeschlagenen Schritt im Protokoll des Dagster-Laufs, beheben Sie "
        "die Ursache, dann den Vorgang erneut ausführen.",
    ),
    "stale_without_proof": (
        "Its worker stopped reporting and left no proof: check the worker (its Dagster run), "
        "then re-run this operation for this partition.",
        "Sein Worker meldete sich nicht mehr und hinterließ keinen Nachweis: prüfen Sie den "
        "Worker (seinen Dagster-Lauf), dann den Vorgang für diese Partition erneut ausführen.",
    ),
    "dagster_queue_wait_exceeded": (
        "It waited too long in Dagster's run queue: check that dagster-daemon runs and the "
        "queue's limits, then re-run.",
        "Er wartete zu lange in Dagsters Warteschlange: prüfen Sie, ob dagster-daemon läuft, "
        "und die Grenzen der Warteschlange, dann erneut ausführen.",
    ),
    "dagster_run_start_timed_out": (
        "Its worker never started (e.g. a pod that was never scheduled): check the run "
        "launcher's capacity and the Dagster run's events, then re-run.",
        "Sein Worker startete nie (z. B. ein nie eingeplanter Pod): prüfen Sie die Kapazität "
        "des Run-Launchers und die Ereignisse des Dagster-Laufs, dann erneut ausführen.",
    ),
    "queued_never_started": (
        "The launch never reached a worker: check that dagster-daemon runs, then re-run this "
        "operation.",
        "Der Start erreichte nie einen Worker: prüfen Sie, ob dagster-daemon läuft, dann den "
        "Vorgang erneut ausführen.",
    ),
    "dagster_run_failed_without_proof": (
        "See the failed Dagster run's log, fix the cause, then re-run this operation.",
        "Prüfen Sie das Protokoll des fehlgeschlagenen Dagster-Laufs, beheben Sie die "
        "Ursache, dann den Vorgang erneut ausführen.",
    ),
    "dagster_run_canceled_without_proof": (
        "Its Dagster run was canceled: re-run this operation if the work is still wanted.",
        "Sein Dagster-Lauf wurde abgebrochen: den Vorgang erneut ausführen, wenn die Arbeit "
        "noch gewünscht ist.",
    ),
    "dagster_success_without_proof": (
        "Dagster finished, but the run's artifacts are missing: see the step's log, then re-run.",
        "Dagster wurde fertig, aber die Artefakte des Laufs fehlen: prüfen Sie das Protokoll "
        "des Schritts, dann erneut ausführen.",
    ),
    "unsupported_type_stale": (
        "This type has no proof adapter: finish the work where it runs, or stop launching it.",
        "Dieser Typ hat keinen Nachweisadapter: schließen Sie die Arbeit dort ab, wo sie "
        "läuft, oder starten Sie ihn nicht mehr.",
    ),
    "run_scope_invalid": (
        "The run's stored scope is unusable: start a new run for the right environment.",
        "Der gespeicherte Bereich des Laufs ist unbrauchbar: starten Sie einen neuen Lauf für "
        "die richtige Umgebung.",
    ),
    "materialization_without_proof": (
        "A materialization names this run, but its artifacts are missing: see who reported "
        "it (the asset's events), then re-run.",
        "Eine Materialisierung nennt diesen Lauf, aber seine Artefakte fehlen: prüfen Sie, "
        "wer sie gemeldet hat (Ereignisse des Assets), dann erneut ausführen.",
    ),
    "materialization_disagrees_with_proof": (
        "A materialization reports another outcome than the artifacts: see the asset's "
        "events, then re-run.",
        "Eine Materialisierung meldet ein anderes Ergebnis als die Artefakte: prüfen Sie die "
        "Ereignisse des Assets, dann erneut ausführen.",
    ),
}
NEXT_STEPS["run_field_invalid"] = (
    "Something other than opsrecon wrote this row (the evidence names the field): find that "
    "writer, then start a new run.",
    "Etwas anderes als opsrecon hat diese Zeile geschrieben (die Nachweise nennen das Feld): "
    "finden Sie diesen Schreiber, dann einen neuen Lauf starten.",
)
# The same step for every reason of "the run left nothing usable": re-run it.
for _code in (
    "inventory_no_coverage",
    "baseline_no_snapshot",
    "backup_no_set",
    "retention_not_started",
    "review_compose_failed",
    "review_not_found",
    "job_finished_without_proof",
    "run_unreadable",
    "run_context_invalid",
):
    NEXT_STEPS[_code] = (
        f"The run left nothing usable: {_RERUN[0]}; if it recurs, see its Dagster run's log.",
        f"Der Lauf hinterließ nichts Verwendbares: {_RERUN[1]}; wiederholt es sich, prüfen "
        "Sie das Protokoll seines Dagster-Laufs.",
    )
# Proven successes, and a run still at work: nothing to do.
NO_STEP_NEEDED = frozenset(
    {
        "inventory_all_types_covered",
        "baseline_snapshot_complete",
        "backup_all_items_captured",
        "retention_enforced",
        "review_composed",
        "review_reused",
        "run_waiting_in_queue",
        "run_alive",
    }
)


def next_step(code: str | None, language: Language = "en") -> str | None:
    """What to do next about a decision with this reason (None: nothing to do)."""
    pair = NEXT_STEPS.get(code or "")
    if pair is None:
        return None
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
    "claimed_outcome": ("Outcome a materialization claimed", "Von einer Materialisierung gemeldet"),
    "artifact_created_at": ("Artifact created at", "Artefakt erstellt um"),
}


def evidence_label(key: str, language: Language = "en") -> str:
    """The label of an evidence field; unknown keys fall back to the key itself."""
    pair = EVIDENCE_LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if language == "en" else pair[1]


# Each outcome's name for people, English and German: the word every surface leads with
# (check descriptions, run-failure messages, the overview, the CLI), the code beside it.
OUTCOME_LABELS: dict[str, tuple[str, str]] = {
    "succeeded": ("Succeeded", "Erfolgreich"),
    "partially_succeeded": ("Partially succeeded", "Teilweise erfolgreich"),
    "blocked": ("Blocked", "Blockiert"),
    "failed": ("Failed", "Fehlgeschlagen"),
}


def outcome_label(outcome: str | None, language: Language = "en") -> str:
    """The outcome's name for people; unknown or missing outcomes fall back to the value."""
    pair = OUTCOME_LABELS.get(outcome or "")
    if pair is None:
        return outcome or "-"
    return pair[0] if language == "en" else pair[1]


def decision_text(outcome: str | None, code: str, language: Language = "en") -> str:
    """One line for a decision: its outcome, the reason in words, the code beside it
    (``Blocked: Admin consent is missing. [environment_consent_missing]``)."""
    return f"{outcome_label(outcome, language)}: {message(code, language)} [{code}]"


# Words the Dagster-side surfaces put around decisions, English and German.
UI_WORDS: dict[str, tuple[str, str]] = {
    "next_step": ("Next step", "Nächster Schritt"),
    "operation_run": ("operation run", "Operationslauf"),
    "decided_by": ("decided by", "entschieden von"),
    "stuck": ("Stuck", "Hängt"),
    "stuck_reason": (
        "Open past its stale threshold: the reconciler decides it at its next tick.",
        "Über seiner Frist offen: der Abgleich entscheidet ihn bei seinem nächsten Lauf.",
    ),
    "stuck_step": (
        "If it stays on this list, check that reconciliation_sensor runs (Automation).",
        "Bleibt er auf dieser Liste, prüfen Sie, ob reconciliation_sensor läuft (Automation).",
    ),
    "ago": ("ago", "her"),
    "nothing": ("Nothing needs attention.", "Nichts braucht Aufmerksamkeit."),
    # The overview's metadata keys (the UI sorts them: the attention entries come first in
    # either language) and table columns.
    "attention": ("attention", "Achtung"),
    "attention_counts": ("attention_counts", "achtung_anzahlen"),
    "outcomes_24h_by_type": ("outcomes_24h_by_type", "ergebnisse_24h_nach_typ"),
    "latest_decisions": ("latest_decisions", "neueste_entscheidungen"),
    "latest_problem_run": ("latest_problem_run", "neuester_problemlauf"),
    "runs_open": ("runs_open", "läufe_offen"),
    "runs_stale": ("runs_stale", "läufe_überfällig"),
    "decided_24h": ("decided_24h", "entschieden_24h"),
    "workspace": ("workspace", "Arbeitsbereich"),
    "environment": ("environment", "Umgebung"),
    "open": ("open", "offen"),
    "stale": ("stale", "überfällig"),
    "blocked_24h": ("blocked_24h", "blockiert_24h"),
    "failed_24h": ("failed_24h", "fehlgeschlagen_24h"),
    "type": ("type", "Typ"),
    "outcome": ("outcome", "Ergebnis"),
    "reason_code": ("reason_code", "Grundcode"),
    "dagster_run": ("dagster_run", "Dagster-Lauf"),
    "succeeded": ("succeeded", "erfolgreich"),
    "partially_succeeded": ("partially_succeeded", "teilweise_erfolgreich"),
    "blocked": ("blocked", "blockiert"),
    "failed": ("failed", "fehlgeschlagen"),
    # The command line: table headers (capitals) and labels.
    "ID": ("ID", "ID"),
    "CREATED": ("CREATED", "ERSTELLT"),
    "TYPE": ("TYPE", "TYP"),
    "ENVIRONMENT": ("ENVIRONMENT", "UMGEBUNG"),
    "STATE": ("STATE", "ZUSTAND"),
    "REASON": ("REASON", "GRUND"),
    "RUN": ("RUN", "LAUF"),
    "SCENARIO": ("SCENARIO", "SZENARIO"),
    "DECIDED": ("DECIDED", "ENTSCHIEDEN"),
    "STATUS": ("STATUS", "STATUS"),
    "FINGERPRINT": ("FINGERPRINT", "FINGERABDRUCK"),
    "SUPERSEDED BY": ("SUPERSEDED BY", "ERSETZT DURCH"),
    "UPDATED": ("UPDATED", "AKTUALISIERT"),
    "AT": ("AT", "ZEIT"),
    "ACTION": ("ACTION", "AKTION"),
    "FROM": ("FROM", "VON"),
    "TO": ("TO", "NACH"),
    "BY": ("BY", "DURCH"),
    "Reasons": ("Reasons", "Gründe"),
    "no_runs": ("no operation runs", "keine Operationsläufe"),
    "before_that": (" before that one", " vor diesem"),
    "more_runs": (
        "more runs: add --before-id {id} for the next page",
        "weitere Läufe: --before-id {id} zeigt die nächste Seite",
    ),
    "by": ("by", "von"),
    "via": ("via", "über"),
    "at": ("at", "um"),
    "attempt": ("attempt", "Versuch"),
    "in": ("in", "in"),
    "Run": ("Run", "Lauf"),
    "Decision": ("Decision", "Entscheidung"),
    "none_yet": ("none yet (status {status})", "noch keine (Status {status})"),
    "no_decision": ("- (no decision yet)", "- (noch keine Entscheidung)"),
    "decided": ("decided", "entschieden"),
    "status": ("status", "Status"),
    "outcome_label": ("outcome", "Ergebnis"),
    "Evidence": ("Evidence", "Nachweise"),
    "Links": ("Links", "Verweise"),
    "Dagster run": ("Dagster run", "Dagster-Lauf"),
    "asset partition": ("asset partition", "Asset-Partition"),
    "no_asset": ("- (this type has no asset)", "- (dieser Typ hat kein Asset)"),
    "artifacts": ("artifacts", "Artefakte"),
    "Audit trail": ("Audit trail", "Prüfpfad"),
    "replaces": ("replaces", "ersetzt"),
    "reported": ("reported", "gemeldet"),
    "applied": ("applied", "übernommen"),
    "not applied": ("not applied", "nicht übernommen"),
    "Earlier decision": ("Earlier decision", "Frühere Entscheidung"),
    "Late job report": ("Late job report", "Später Job-Bericht"),
    "Raw context": ("Raw context", "Gespeicherter Kontext"),
    "see_above": ("(see {where} above)", "(siehe {where} oben)"),
    "nothing to do": ("nothing to do", "nichts zu tun"),
    "mismatch": ("MISMATCH, expected {expected}", "ABWEICHUNG, erwartet {expected}"),
    "no_reviews": ("no reviews", "keine Reviews"),
    "Review": ("Review", "Review"),
    "fingerprint": ("fingerprint", "Fingerabdruck"),
    "requested": ("requested", "angefordert"),
    "inputs_changed": (
        "(the inputs changed between the run's start and compose)",
        "(die Eingaben änderten sich zwischen Start und Erstellung)",
    ),
    "composed by": ("composed by", "erstellt von"),
    "superseded by": ("superseded by", "ersetzt durch"),
    "review": ("review", "Review"),
    "History": ("History", "Verlauf"),
    "superseded_earlier": (
        "superseded the earlier published review(s): {ids}",
        "ersetzte die zuvor veröffentlichte(n) Review(s): {ids}",
    ),
    "demo_mismatches": (
        "{n} run(s) decided differently than expected",
        "{n} Lauf/Läufe anders entschieden als erwartet",
    ),
    "demo_done": (
        "all {n} runs decided as expected. Next: python3 tasks.py dev (opens this demo's "
        "Dagster instance in the UI)",
        "alle {n} Läufe wie erwartet entschieden. Weiter: python3 tasks.py dev (öffnet die "
        "Dagster-Instanz dieser Demo in der Oberfläche)",
    ),
}


def word(key: str, language: Language = "en") -> str:
    """A word of ``UI_WORDS`` in the language (the key itself when unknown)."""
    pair = UI_WORDS.get(key)
    if pair is None:
        return key
    return pair[0] if language == "en" else pair[1]
