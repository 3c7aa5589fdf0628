"""A small, real Flask application for ``tests/e2e/test_apps.py`` (served as ``flaskapp:app``)."""

from __future__ import annotations

import hashlib

from flask import Flask, jsonify, redirect, render_template_string, request, url_for

app = Flask(__name__)

PAGE = """<!doctype html>
<title>ferrocgi flask test</title>
<h1>Hello from Flask, {{ name }}!</h1>
<a id="self" href="{{ url_for('hello', name=name) }}">again</a>
"""


@app.get("/")
def index() -> str:
    return render_template_string(PAGE, name="world")


@app.get("/hello/<name>")
def hello(name: str) -> str:
    return render_template_string(PAGE, name=name)


@app.get("/where")
def where() -> object:
    return jsonify(
        url_for=url_for("hello", name="x"),
        external=url_for("hello", name="x", _external=True),
        script_root=request.script_root,
        path=request.path,
    )


@app.post("/form")
def form() -> object:
    return jsonify(fields=request.form.to_dict(), query=request.args.to_dict())


@app.post("/upload")
def upload() -> object:
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@app.get("/go")
def go() -> object:
    return redirect(url_for("index"))
