from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit ledger"

    def ready(self) -> None:
        from audit import ledger
        from caspix.crypto import events

        events.subscribe(ledger.record_key_event)
