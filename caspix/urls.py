"""Root URLconf. Apps are included by dotted path: the ground floor never imports the domain."""

from django.urls import include, path

from caspix import health, metrics

urlpatterns = [
    path("administration/queues/", include("cases.admin_urls")),
    path("administration/api-clients/", include("cases.api_admin_urls")),
    path("administration/routing-rules/", include("cases.routing_admin_urls")),
    path("administration/webhooks/", include("cases.webhook_admin_urls")),
    path("administration/fiu-profiles/", include("reporting.fiu_admin_urls")),
    path("", include("accounts.urls")),
    path("work/", include("cases.urls")),
    path("audit/", include("audit.urls")),
    path("dashboard/", include("reporting.urls")),
    path("reports/", include("reporting.report_urls")),
    path("oversight/access-review/", include("reporting.access_review_urls")),
    path("exports/", include("reporting.export_urls")),
    path("api/v1/", include("cases.api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
