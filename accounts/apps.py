from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from accounts.alerts import security_alert_recipients
        from audit import integrity

        integrity.add_recipients(security_alert_recipients)

        from accounts.signin import record_forged_request
        from caspix.errors import on_csrf_failure

        on_csrf_failure(record_forged_request)
