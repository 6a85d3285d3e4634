"""``opsrecon reconcile``: one reconciliation batch from the command line, the same code
path as the reconciliation sensor, then the delivery of due decisions to Dagster.

Dagster is imported inside the command (``--help`` stays fast).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import select

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.cli.access import require
from opsrecon_dagster.cli.common import (
    WRAPPED,
    acting_actor,
    app_of,
    cells,
    console,
    emit_json,
    print_reason_legend,
    table,
    user_errors,
)
from opsrecon_dagster.db.models import Workspace
from opsrecon_dagster.operations.catalog import (
    parse_operation_type,
)
from opsrecon_dagster.tenancy import (
    resolve_workspace,
)


@click.command("reconcile")
@click.option("--type", "op_type", default=None, help="Only this operation type.")
@click.option("--workspace", default=None, help="Only this workspace (id or slug).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option("--dry-run", is_flag=True, help="Decide and print, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reconcile_command(
    ctx: click.Context,
    op_type: str | None,
    workspace: str | None,
    limit: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Finalize stale runs from proof: the same code path as the reconciliation sensor."""
    app = app_of(ctx)
    # A dry run writes nothing, so it names no one.
    actor = None if dry_run else acting_actor()
    with user_errors(app):
        type_name = parse_operation_type(op_type).value if op_type else None
        with app.sessions() as session:
            ws_id = resolve_workspace(session, workspace).id if workspace else None
            # Without --workspace a batch may touch any workspace: with entitlements on,
            # the actor needs the role on every one (else: name one with --workspace).
            scope = [ws_id] if ws_id is not None else list(session.scalars(select(Workspace.id)))
    command = "reconcile --dry-run" if dry_run else "reconcile"
    require(app, scope, "viewer" if dry_run else "operator", command)
    with user_errors(app):
        rows, outbox_state = _reconcile_once(
            app,
            limit=limit,
            op_type=type_name,
            workspace_id=ws_id,
            dry_run=dry_run,
            acted_by=actor,
        )
    if as_json:
        emit_json({"dry_run": dry_run, "runs": rows, "deliveries": outbox_state})
        return
    deliveries = (
        f"decisions shown in Dagster: {outbox_state['delivered']}; still to deliver: "
        f"{outbox_state['pending']} ({outbox_state['due']} due now)"
        + (f", unreadable: {outbox_state['unreadable']}" if outbox_state["unreadable"] else "")
    )
    if not rows:
        pending = outbox_state["pending"] or outbox_state["delivered"]
        click.echo(f"no stale operation runs; {deliveries}" if pending else "nothing to do")
        return
    # OUTCOME: the decision (none yet: -), with its reason code below it.
    t = table("ID", "TYPE", "ENVIRONMENT", "OUTCOME", "WRITTEN", wrap=WRAPPED)
    for row in rows:
        verb = "would decide" if dry_run else (row["written"] or "no decision")
        outcome = f"{row['outcome'] or '-'}\n{row['reason_code']}"
        t.add_row(*cells(row["id"], row["type"], row["partition_key"], outcome, verb))
    console().print(t)
    print_reason_legend([str(r["reason_code"]) for r in rows], app.language)
    if not dry_run:
        click.echo(deliveries)


def _reconcile_once(
    app: AppContext,
    *,
    limit: int,
    op_type: str | None,
    workspace_id: int | None,
    dry_run: bool,
    acted_by: str | None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One batch through the reconciliation service, on the instance in ``$DAGSTER_HOME``,
    then every due decision shown in Dagster; its decisions as rows (the ``--json`` shape),
    and the outbox's state after the delivery. ``acted_by``: who runs it, recorded on the
    audit rows it writes."""
    import dagster as dg

    from opsrecon_dagster.definitions import defs
    from opsrecon_dagster.instance.decisions import InstancePort
    from opsrecon_dagster.launch import ensure_dagster_home
    from opsrecon_dagster.operations import outbox
    from opsrecon_dagster.reconciliation.service import deliver, reconcile_batch

    ensure_dagster_home()
    delivered = 0
    with dg.DagsterInstance.get() as instance:
        port = InstancePort(instance, defs.resolve_job_def)
        results = reconcile_batch(
            app,
            port,
            limit=limit,
            op_type=op_type,
            workspace_id=workspace_id,
            dry_run=dry_run,
            acted_by=acted_by,
        )
        if not dry_run:
            delivered = deliver(app, port).entries
    with app.sessions() as session:
        left = outbox.backlog(session, datetime.now(UTC))
    rows = [
        {
            "id": r.run_id,
            "type": r.op_type,
            "partition_key": r.partition_key,
            "outcome": r.verdict.outcome.value if r.verdict.outcome else None,
            "reason_code": r.verdict.reason_code,
            "adapter": r.verdict.adapter,
            "written": r.status.value if r.status else None,
        }
        for r in results
    ]
    state = {
        "delivered": delivered,
        "pending": left.pending,
        "due": left.due,
        "unreadable": left.unreadable,
    }
    return rows, state
