from django.urls import path

from policies import apis

urlpatterns = [
    path("permission-modes", apis.PermissionModeListCreateApi.as_view(), name="permission-mode-list"),
    path("permission-modes/<str:name>", apis.PermissionModeDetailApi.as_view(), name="permission-mode-detail"),
]
