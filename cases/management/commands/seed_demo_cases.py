"""Give the demo a card-fraud queue and an AML queue with a few cases; refused outside the demo.

The demo analyst and lead belong to the card-fraud team (``seed_demo``): they see its cases and
none of the AML team's, which is the boundary the demo shows. Idempotent.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Team
from cases.models import Case, Queue

CASES = {
    "card-fraud": [
        ("Card-not-present burst across three merchants", Case.Priority.HIGH),
        ("Contactless spend far from the card's home region", Case.Priority.MEDIUM),
        ("New payee and immediate transfer after password reset", Case.Priority.CRITICAL),
        ("Repeated declines, then an approved purchase", Case.Priority.LOW),
    ],
    "aml": [
        ("Structured cash deposits below the reporting threshold", Case.Priority.HIGH),
        ("Rapid movement through newly opened accounts", Case.Priority.MEDIUM),
    ],
}
TEAMS = {"card-fraud": "Card fraud", "aml": "Anti-money laundering"}


class Command(BaseCommand):
    help = "Create the demo queues and cases (after seed_demo)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO:
            raise CommandError("seed_demo_cases runs only when CASPIX_ENV=demo.")
        with transaction.atomic():
            for slug, cases in CASES.items():
                team, _ = Team.objects.get_or_create(slug=slug, defaults={"name": TEAMS[slug]})
                queue, _ = Queue.objects.get_or_create(slug=slug, defaults={"name": f"{team.name} queue", "team": team})
                for title, priority in cases:
                    Case.objects.get_or_create(title=title, queue=queue, defaults={"priority": priority})
        self.stdout.write(f"Demo queues: {', '.join(CASES)}; {Case.objects.count()} cases.")
