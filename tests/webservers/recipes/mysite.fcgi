#!/srv/mysite/venv/bin/python
import sys, os

# Add a custom Python path.
sys.path.insert(0, "/srv/mysite")

# Switch to the directory of your project. (Optional.)
# os.chdir("/srv/mysite")

# Set the DJANGO_SETTINGS_MODULE environment variable.
os.environ['DJANGO_SETTINGS_MODULE'] = "mysite.settings"

from ferrocgi.django import runfastcgi
runfastcgi(method="threaded", daemonize="false")
