# The shared-hosting recipe edits this line, touches mysite.fcgi and expects the new value.
VERSION = 1
