"""Alerts: each decision that needs attention, posted once to a webhook (plain Python).

``ledger`` selects the decisions not posted yet and records the posted ones; ``webhook``
posts Slack-compatible JSON; ``posting`` is the service the alerts sensor calls.
"""
