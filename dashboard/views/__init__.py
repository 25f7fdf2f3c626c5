"""Blueprints, one per page family. Each page builds plain data once and serves it as
HTML, or as JSON with `?format=json` (the API routes reuse the same builders)."""
from flask import jsonify, render_template, request


def respond(template, data, **extra):
    """`data` as JSON when asked for, else rendered into `template`."""
    if request.args.get("format") == "json":
        return jsonify(data)
    return render_template(template, data=data, **extra)
