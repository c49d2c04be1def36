"""Error pages say what went wrong and lead back: to the board, the console or the sign-in page, by who is
signed in; and every page links the service's own favicon."""

from __future__ import annotations

from tests.test_console import make_browser_agent
from tests.test_console import sign_in as agent_signed_in
from tests.test_supervisor_pages import signed_in, users  # noqa: F401 - the users fixture


def links(html: str) -> list[str]:
    start = html.index('<nav class="error-links"')
    nav = html[start:html.index("</nav>", start)]
    return [part.split('"', 1)[0] for part in nav.split('href="')[1:]]


def test_an_unknown_page_signed_out_leads_to_sign_in(centre):
    response = centre.app.test_client().get("/no-such-page")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "Page not found" in html and "There is no page at /no-such-page." in html
    assert links(html) == ["/login", "/"]


def test_a_supervisors_error_page_leads_back_to_the_board(centre, users):  # noqa: F811
    response = signed_in(centre, "sam").get("/calls/CA-nothing")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "No such call" in html
    assert links(html) == ["/board", "/calls", "/"]


def test_an_agents_error_page_leads_back_to_the_console(centre):
    make_browser_agent(centre, "101", "alice")
    agent = agent_signed_in(centre, "alice")
    response = agent.get("/board")
    html = response.get_data(as_text=True)
    assert response.status_code == 403 and "Not for your role" in html
    assert links(html) == ["/console", "/"]


def test_the_favicon_is_the_services_own_svg(centre):
    client = centre.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data


def test_the_api_keeps_answering_an_unknown_path_in_json(centre, api_headers):
    response = centre.client.get("/api/no-such-thing", headers=api_headers(centre.app))
    assert response.status_code == 404 and response.get_json() == {"error": "not found"}
