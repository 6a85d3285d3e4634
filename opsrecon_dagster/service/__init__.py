"""The reconciliation service: what the sensors, ``opsrecon reconcile`` and the demo call to
decide stale runs and deliver the decisions to Dagster (``service.reconciliation``).

The decisions themselves are plain Python (``reconciliation.reconciler`` over the proof
rules); this package connects them to a Dagster instance: what it knows about runs and
materializations (``instance_view``), and the events each decision puts there.
"""
