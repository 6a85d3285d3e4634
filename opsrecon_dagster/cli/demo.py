"""``opsrecon demo``: the end-to-end demo on embedded SQLite and a local Dagster instance.

The demo (and Dagster) is imported inside the command (``--help`` stays fast).
"""

from __future__ import annotations

import os

import click

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.common import (
    UserError,
    cells,
    console,
    print_reason_legend,
    table,
)
from opsrecon_dagster.operations.reasons import Language, word
from opsrecon_dagster.settings import LANGUAGE_VAR

# The scenarios' names in German (the demo names them in English, as the README's table does).
SCENARIOS_DE = {
    "launch that never started": "Start, der nie begann",
    "unsupported type gone stale": "nicht unterstützter Typ, veraltet",
    "inventory: complete": "Inventar: vollständig",
    "inventory: throttled type": "Inventar: gedrosselter Typ",
    "inventory: consent missing": "Inventar: Zustimmung fehlt",
    "backup: failed items": "Sicherung: fehlgeschlagene Elemente",
    "backup: complete": "Sicherung: vollständig",
    "backup: retention after the backup": "Sicherung: Aufbewahrung nach der Sicherung",
    "backup: environment disabled": "Sicherung: Umgebung deaktiviert",
    "baseline: complete": "Baseline: vollständig",
    "baseline: gaps (missing, ambiguous, failed)": (
        "Baseline: Lücken (fehlend, mehrdeutig, fehlgeschlagen)"
    ),
    "review: composed": "Review: erstellt",
    "waited in Dagster's run queue, then ran": "wartete in Dagsters Warteschlange, lief dann",
    "worker killed mid-materialization": "Worker mitten in der Materialisierung beendet",
    "late-finishing job (corrected once)": "spät fertiger Job (einmal korrigiert)",
}


def scenario(label: str, language: Language) -> str:
    """A scenario's name in the language (unknown ones as the demo names them)."""
    return SCENARIOS_DE.get(label, label) if language == "de" else label


@click.command("demo")
@click.pass_context
def demo_command(ctx: click.Context) -> None:
    """Run the end-to-end demo on embedded SQLite and a local Dagster instance (data/)."""
    from opsrecon_dagster.demo import run_demo

    app: AppContext = ctx.obj
    os.environ[LANGUAGE_VAR] = app.language  # its jobs, workers and reconciler speak it too
    rows = run_demo(click.echo)
    click.echo("")
    # DECIDED: the outcome, and below it who decided; "MISMATCH" beside a decision that is
    # not the expected one. Reason codes are never broken (the scenario text wraps instead).
    language = app.language
    t = table(
        "RUN",
        "SCENARIO",
        "ENVIRONMENT",
        "DECIDED",
        "REASON",
        wrap=("SCENARIO", "DECIDED"),
        language=language,
    )
    by = word("by", language)
    for r in rows:
        mismatch = word("mismatch", language).format(expected=r.expected)
        decided = r.decided if r.expected == r.decided else f"{r.decided} {mismatch}"
        t.add_row(
            *cells(
                r.run_id,
                scenario(r.label, language),
                r.environment,
                f"{decided}\n{by} {r.decided_by}",
                r.reason,
            )
        )
    console().print(t)
    print_reason_legend([r.reason for r in rows], app.language)
    mismatches = [r for r in rows if r.expected != r.decided]
    if mismatches:
        raise UserError(word("demo_mismatches", language).format(n=len(mismatches)))
    click.echo("\n" + word("demo_done", language).format(n=len(rows)))
