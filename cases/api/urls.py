from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from cases.api import views
from caspix.access import public

app_name = "api"

# The description of the API is public, as any API's documentation: it names fields, never data.
_open = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("alerts", views.AlertCreate.as_view(), name="alerts"),
    path("alerts/bulk", views.AlertBulk.as_view(), name="alerts_bulk"),
    path("alerts/<uuid:pk>", views.AlertDetail.as_view(), name="alert"),
    path("schema", public(SpectacularAPIView.as_view(**_open)), name="schema"),
    path("docs", public(SpectacularSwaggerSplitView.as_view(url_name="api:schema", **_open)), name="docs"),
]
