"""The Flask sample's /spaces, the baseline of `cargo bench --bench load` (benches/README.md).

It does what /spaces of Webex's Flask sample (webex-flask-oauth-example) does, on the sample's
stack: the access token read from Flask's session cookie, one GET of /rooms with it (requests,
a new connection each call, as the sample's requests.get makes), the room titles rendered by a
Jinja template that extends a base one, served by Werkzeug's threaded server (Flask's app.run).
What differs is only what a benchmark needs: the upstream is BENCH_ROOMS_URL (the bench's fake
Webex) instead of webexapis.com, the secret key comes from FLASK_SECRET_KEY (the sample takes
os.urandom(24) at start, which no client could sign a session for), and the sample's print()s
and its refresh on a 401 (the bench's tokens never expire) are left out.

    python app.py serve PORT   serve on 127.0.0.1:PORT until killed
    python app.py cookie       read access tokens from stdin, one a line; print for each the
                               Cookie header value of a Flask session holding it (signed by
                               Flask's own session serializer with FLASK_SECRET_KEY)
"""

import os
import sys

import requests
from flask import Flask, render_template, session

app = Flask(__name__)
app.secret_key = os.environ["FLASK_SECRET_KEY"]
ROOMS_URL = os.environ.get("BENCH_ROOMS_URL", "")


@app.route("/spaces", methods=["GET"])
def spaces():
    token = session.get("oauth_token")
    if token is None:
        return "no session", 401
    headers = {
        "accept": "application/json",
        "Content-Type": "application/json",
        "Authorization": "Bearer " + token,
    }
    response = requests.get(url=ROOMS_URL, headers=headers, timeout=15)
    titles = [room["title"] for room in response.json()["items"]]
    return render_template("spaces.html", spaces=titles)


def session_cookie(token):
    """`name=value` of the session cookie Flask would set for a session holding `token`."""
    serializer = app.session_interface.get_signing_serializer(app)
    return f"{app.config['SESSION_COOKIE_NAME']}={serializer.dumps({'oauth_token': token})}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        # As the sample serves: app.run (Werkzeug, threaded, no debugger), on loopback here.
        app.run("127.0.0.1", port=int(sys.argv[2]), debug=False)
    elif sys.argv[1:] == ["cookie"]:
        for line in sys.stdin:
            if line.strip():
                print(session_cookie(line.strip()))
    else:
        sys.exit(__doc__)
