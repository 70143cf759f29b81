import importlib

from django.contrib.auth import views as auth_views
from django.urls import path

from . import media, views

app_name = "frontend"

urlpatterns = [
    path("", views.home, name="home"),
    path("media/clip/<str:token>/", media.clip_media, name="clip-media"),
    path("demo/mturk/externalSubmit", views.demo_mturk_receiver, name="demo-mturk-receiver"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
]

# Pages of areas that land independently (the HIT page, the expert page) add their patterns here.
for _module in ("frontend.views_hit", "frontend.views_gold"):
    try:
        urlpatterns += importlib.import_module(_module).urlpatterns
    except ModuleNotFoundError as _exc:
        if _exc.name != _module:
            raise
