from django.apps import AppConfig


class FerrocgiConfig(AppConfig):
    """Adds the ``runfcgi`` management command."""

    name = "ferrocgi.django"
    label = "ferrocgi"
    verbose_name = "ferrocgi"
