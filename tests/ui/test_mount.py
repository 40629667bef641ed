"""The dashboard's static files at `/`, and the API's own answers left as they were."""

from __future__ import annotations

import httpx

from support import Server


def test_dashboard_files_are_served(server: Server) -> None:
    index = httpx.get(server.root_url + "/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in index.text
    for name, kind in [("app.js", "javascript"), ("chart.js", "javascript"), ("style.css", "css")]:
        r = httpx.get(f"{server.root_url}/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    assert httpx.get(server.root_url + "/missing.js").status_code == 404


def test_api_paths_keep_the_error_envelope(server: Server) -> None:
    assert httpx.get(server.root_url + "/healthz").json() == {"status": "ok"}
    for method in ("GET", "POST"):
        r = httpx.request(method, server.base_url + "/no/such/thing")
        assert r.status_code == 404, method
        assert r.json()["error"]["message"] == f"Invalid URL ({method} /v1/no/such/thing)"
    r = httpx.delete(server.base_url + "/files", headers={"Authorization": "Bearer x"})
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
