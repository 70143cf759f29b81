from django.shortcuts import render

from annotation.selectors.overview import overview


def home(request):
    return render(request, "frontend/home.html", {"overview": overview(), "user": request.user})
