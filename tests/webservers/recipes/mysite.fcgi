#!@PYTHON@
import sys, os

# Add a custom Python path.
sys.path.insert(0, "@PROJDIR@")

# Switch to the directory of your project. (Optional.)
# os.chdir("/home/user/myproject")

# Set the DJANGO_SETTINGS_MODULE environment variable.
os.environ['DJANGO_SETTINGS_MODULE'] = "mysite.settings"
# (Test only: where this install's static files are published.)
os.environ['MYSITE_STATIC_URL'] = "@STATIC_URL@"

from ferrocgi.django import runfastcgi
runfastcgi(method="threaded", daemonize="false")
