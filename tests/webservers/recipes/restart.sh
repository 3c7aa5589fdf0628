#!/bin/bash

# Replace these settings. PYTHON is the virtualenv's python, named in full: `env -` below
# clears PATH, so manage.py's own "#!/usr/bin/env python3" would find the system Python.
PROJDIR="@PROJDIR@"
PYTHON="@PYTHON@"
PIDFILE="$PROJDIR/mysite.pid"
SOCKET="$PROJDIR/mysite.sock"

cd $PROJDIR
if [ -f $PIDFILE ]; then
    kill `cat -- $PIDFILE`
    rm -f -- $PIDFILE
fi

exec /usr/bin/env - \
  PYTHONPATH="../python:.." \
  "$PYTHON" ./manage.py runfcgi socket=$SOCKET pidfile=$PIDFILE
