"""Alerts, cases, parties, queues, routing and the intake API: the analysts' workspace."""
