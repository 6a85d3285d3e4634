"""The reconciliation service's Dagster side over a real ``DagsterInstance``: what it reads
there about runs and materializations (``view``), and how each decision shows there
(``decisions``: ``InstancePort``). The service itself is plain Python
(``reconciliation/service.py``)."""
