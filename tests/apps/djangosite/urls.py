from django.contrib import admin
from django.urls import path

from djangosite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("where/", views.where, name="where"),
    path("upload/", views.upload, name="upload"),
    path("admin/", admin.site.urls),
    path("async/", views.async_view, name="async"),
    path("async/stream/", views.async_stream, name="async-stream"),
    path("async/slow/", views.async_slow, name="async-slow"),
]
