from django.contrib.auth import views as auth_views
from django.urls import path

from catalog import media
from catalog.access import public_page
from catalog.auth import ThrottledAuthenticationForm

from . import views, views_gold, views_hit

app_name = "frontend"

urlpatterns = [
    path("", views.home, name="home"),
    path("media/clip/<str:token>/", media.clip_media, name="clip-media"),
    path("demo/mturk/externalSubmit", views.demo_mturk_receiver, name="demo-mturk-receiver"),
    path(
        "accounts/login/",
        public_page(
            auth_views.LoginView.as_view(
                template_name="frontend/login.html", authentication_form=ThrottledAuthenticationForm
            )
        ),
        name="login",
    ),
    path("accounts/logout/", public_page(auth_views.LogoutView.as_view(next_page="/")), name="logout"),
    *views_hit.urlpatterns,
    *views_gold.urlpatterns,
]
