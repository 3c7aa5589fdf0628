from django.urls import path

from benchsite import views

urlpatterns = [path("django/", views.page), path("adjango/", views.apage)]
