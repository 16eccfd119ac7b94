from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        from cases import workflow
        from reporting import reports

        # A case leaves reporting (withdrawn or closed) only once its report is submitted or abandoned.
        if reports.open_report_of not in workflow.LEAVING_REPORTING:
            workflow.LEAVING_REPORTING.append(reports.open_report_of)
