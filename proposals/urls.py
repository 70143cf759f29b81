from django.urls import path

from . import views

app_name = "proposals"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("sets/<int:pk>/", views.set_detail, name="set-detail"),
    path("runs/progress.json", views.runs_progress, name="runs-progress"),
    path("datasets/<slug:name>/compute/", views.compute, name="compute"),
    path("datasets/<slug:name>/build/", views.build, name="build"),
]
