from django.apps import AppConfig


class CryptoConfig(AppConfig):
    """The key service's database side: wrapped data keys, integrity incidents, key commands."""

    name = "caspix.crypto"
    label = "crypto"
    verbose_name = "Keys and encryption"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from caspix.crypto import checks  # noqa: F401  (registers the system checks)
