from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Cases"

    def ready(self) -> None:
        # Closures and reopenings register their kinds of four-eyes request.
        from cases import workflow  # noqa: F401
