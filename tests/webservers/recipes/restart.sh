#!/bin/bash

# Replace these three settings.
PROJDIR="/srv/mysite"
PIDFILE="$PROJDIR/mysite.pid"
SOCKET="/run/mysite/mysite.sock"

cd $PROJDIR
if [ -f $PIDFILE ]; then
    kill `cat -- $PIDFILE`
    rm -f -- $PIDFILE
fi

# "env -" empties the environment, PATH included: name the virtualenv's python, or a stock
# manage.py ("#!/usr/bin/env python3") runs the system's Python, which has no Django.
exec /usr/bin/env - \
  PYTHONPATH="../python:.." \
  /srv/mysite/venv/bin/python manage.py runfcgi socket=$SOCKET pidfile=$PIDFILE
