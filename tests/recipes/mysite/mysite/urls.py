from django.contrib import admin
from django.urls import path

from mysite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("about/", views.about, name="about"),
    path("info/", views.info, name="info"),
    path("upload/", views.upload, name="upload"),
    path("admin/", admin.site.urls),
]
