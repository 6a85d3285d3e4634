"""``opsrecon reviews``: list and show environment reviews, publish, supersede, archive.

Every change goes through the review lifecycle (``artifacts.review_lifecycle``), which
refuses moves its state machine does not allow and writes one event row per change.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import click
from sqlalchemy.orm import Session

from opsrecon_dagster.app import AppContext
from opsrecon_dagster.artifacts.review_lifecycle import (
    ReviewLifecycle,
    ReviewNotFoundError,
    ReviewTransitionError,
)
from opsrecon_dagster.cli.access import listing_scope, require
from opsrecon_dagster.cli.common import (
    DB_ID,
    acting_actor,
    app_of,
    by_whom,
    cells,
    console,
    emit_json,
    table,
    user_errors,
)
from opsrecon_dagster.db.models import EnvironmentReview, ManagedEnvironment, ReviewEvent
from opsrecon_dagster.enums import ReviewStatus
from opsrecon_dagster.operations.reasons import word
from opsrecon_dagster.tenancy import resolve_environment, resolve_workspace

REVIEW_ERRORS = (ReviewNotFoundError, ReviewTransitionError)


def _partition_key(session: Session, environment_id: int) -> str | None:
    env = session.get(ManagedEnvironment, environment_id)
    return env.partition_key if env is not None else None


def review_summary(review: EnvironmentReview, partition_key: str | None) -> dict[str, Any]:
    """The JSON shape of one review (``reviews list --json``, ``reviews show --json``)."""
    return {
        "id": review.id,
        "workspace_id": review.workspace_id,
        "managed_environment_id": review.managed_environment_id,
        "partition_key": partition_key,
        "status": review.status,
        "fingerprint": review.fingerprint,
        "requested_fingerprint": review.requested_fingerprint,
        "operation_run_id": review.operation_run_id,
        "superseded_by_id": review.superseded_by_id,
        "composed_at": review.composed_at.isoformat() if review.composed_at else None,
        "created_at": review.created_at.isoformat(),
        "updated_at": review.updated_at.isoformat(),
    }


def event_summary(event: ReviewEvent) -> dict[str, Any]:
    return {
        "at": event.created_at.isoformat(),
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "actor": event.actor,
        "acted_by": event.acted_by,
        "operation_run_id": event.operation_run_id,
        "details": event.details,
    }


@click.group()
def reviews() -> None:
    """Environment reviews: list, show, publish, supersede, archive."""


@reviews.command("list")
@click.option("--workspace", default=None, help="Workspace id or slug.")
@click.option("--environment", default=None, help="Environment id, partition key or ws/env.")
@click.option("--status", type=click.Choice([s.value for s in ReviewStatus]), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reviews_list(
    ctx: click.Context,
    workspace: str | None,
    environment: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List reviews, newest first."""
    app = app_of(ctx)
    with user_errors(app, REVIEW_ERRORS), app.sessions() as session:
        ws_id = resolve_workspace(session, workspace).id if workspace else None
        env = resolve_environment(session, environment) if environment else None
        env_id, env_ws = (env.id, env.workspace_id) if env is not None else (None, None)
    allowed = listing_scope(app, [ws_id, env_ws], "reviews list", "reviews")
    with user_errors(app, REVIEW_ERRORS), app.sessions() as session:
        found = ReviewLifecycle(app.sessions).find(
            workspace_id=ws_id,
            environment_id=env_id,
            status=ReviewStatus(status) if status else None,
            limit=limit,
            workspace_ids=allowed,
        )
        data = [review_summary(r, _partition_key(session, r.managed_environment_id)) for r in found]
    if as_json:
        emit_json(data)
        return
    if not data:
        click.echo(word("no_reviews", app.language))
        return
    out = table(
        "ID",
        "ENVIRONMENT",
        "STATUS",
        "FINGERPRINT",
        "RUN",
        "SUPERSEDED BY",
        "UPDATED",
        language=app.language,
    )
    for d in data:
        out.add_row(
            *cells(
                d["id"],
                d["partition_key"],
                d["status"],
                d["fingerprint"][:12],
                d["operation_run_id"],
                d["superseded_by_id"],
                d["updated_at"][:19].replace("T", " "),
            )
        )
    console().print(out)


@reviews.command("show")
@click.argument("review_id", type=DB_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reviews_show(ctx: click.Context, review_id: int, as_json: bool) -> None:
    """One review and every change of its status."""
    app = app_of(ctx)
    lifecycle = ReviewLifecycle(app.sessions)
    with user_errors(app, REVIEW_ERRORS):
        workspace_id = lifecycle.get(review_id).workspace_id
    require(app, [workspace_id], "viewer", "reviews show", f"review {review_id}")
    with user_errors(app, REVIEW_ERRORS), app.sessions() as session:
        review = lifecycle.get(review_id)
        data = {
            **review_summary(review, _partition_key(session, review.managed_environment_id)),
            "summary": review.summary,
            "events": [event_summary(e) for e in lifecycle.events(review_id)],
        }
    if as_json:
        emit_json(data)
        return
    w = partial(word, language=app.language)
    labels = [w("fingerprint"), w("requested"), w("composed by"), w("superseded by")]
    pad = max(len(label) for label in labels) + 2
    where = data["partition_key"] or "-"
    click.echo(f"{w('Review')} {data['id']} {w('in')} {where}: {data['status']}")
    click.echo(f"  {labels[0]:<{pad}}{data['fingerprint']}")
    if data["requested_fingerprint"]:
        click.echo(f"  {labels[1]:<{pad}}{data['requested_fingerprint']}")
        click.echo(f"  {'':<{pad}}{w('inputs_changed')}")
    click.echo(f"  {labels[2]:<{pad}}{w('operation_run')} {data['operation_run_id']}")
    if data["superseded_by_id"]:
        click.echo(f"  {labels[3]:<{pad}}{w('review')} {data['superseded_by_id']}")
    click.echo(f"{w('History')}:")
    history = table("AT", "ACTION", "FROM", "TO", "BY", "RUN", language=app.language)
    for e in data["events"]:
        history.add_row(
            *cells(
                e["at"][:19].replace("T", " "),
                e["action"],
                e["from_status"],
                e["to_status"],
                by_whom(e["actor"], e["acted_by"]),
                e["operation_run_id"],
            )
        )
    console().print(history)


def _change(ctx: click.Context, review_id: int, as_json: bool, verb: str, **kwargs: Any) -> None:
    app: AppContext = app_of(ctx)
    actor = acting_actor()
    lifecycle = ReviewLifecycle(app.sessions)
    with user_errors(app, REVIEW_ERRORS):
        workspace_id = lifecycle.get(review_id).workspace_id
    require(app, [workspace_id], "operator", f"reviews {verb}", f"review {review_id}")
    with user_errors(app, REVIEW_ERRORS):
        before = lifecycle.get(review_id).status
        getattr(lifecycle, verb)(review_id, acted_by=actor, **kwargs)
        after = lifecycle.get(review_id).status
        events = lifecycle.events(review_id)
    if as_json:
        emit_json({"id": review_id, "from_status": before, "to_status": after})
        return
    click.echo(f"{word('review', app.language)} {review_id}: {before} -> {after}")
    superseded = (events[-1].details or {}).get("superseded_ids") if events else None
    if superseded:
        click.echo("  " + word("superseded_earlier", app.language).format(ids=superseded))


@reviews.command("publish")
@click.argument("review_id", type=DB_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reviews_publish(ctx: click.Context, review_id: int, as_json: bool) -> None:
    """Publish a ready review; the environment's published review before it is superseded."""
    _change(ctx, review_id, as_json, "publish")


@reviews.command("supersede")
@click.argument("review_id", type=DB_ID)
@click.option("--by", "by", type=DB_ID, default=None, help="The review that replaces it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reviews_supersede(ctx: click.Context, review_id: int, by: int | None, as_json: bool) -> None:
    """Mark a review superseded (it keeps proving the run that composed it)."""
    _change(ctx, review_id, as_json, "supersede", by=by)


@reviews.command("archive")
@click.argument("review_id", type=DB_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def reviews_archive(ctx: click.Context, review_id: int, as_json: bool) -> None:
    """Archive a review (history only; it keeps proving the run that composed it)."""
    _change(ctx, review_id, as_json, "archive")
