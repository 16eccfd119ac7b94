from django.apps import AppConfig


class CryptoTestsConfig(AppConfig):
    """Models that exercise the encrypted fields; installed only under ``CASPIX_ENV=test``."""

    name = "tests.crypto_app"
    label = "crypto_tests"
    default_auto_field = "django.db.models.BigAutoField"
