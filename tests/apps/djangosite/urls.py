from django.contrib import admin
from django.urls import path

from djangosite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("where/", views.where, name="where"),
    path("upload/", views.upload, name="upload"),
    path("admin/", admin.site.urls),
]
