"""``/docs`` and ``/redoc`` work without the internet: every asset a page references is served by conveyor
itself (same origin) and loads."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tests.web.conftest import Api

ORIGIN = "http://testserver"


class References(HTMLParser):
    """The URLs a page makes the browser load: src, href and spec-url attributes, and URLs in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls += re.findall(r"(?:https?:)?//[^\s'\"`]+", data)
            self.urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", data)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_of_the_page_is_same_origin_and_loads(api: Api, page: str) -> None:
    response = api.get(page)
    assert response.status_code == 200
    parser = References()
    parser.feed(response.text)
    assert len(parser.urls) >= 2, parser.urls  # a script and the schema at least
    for reference in parser.urls:
        url = urljoin(f"{ORIGIN}{page}", reference)
        assert urlsplit(url).netloc == urlsplit(ORIGIN).netloc, f"{page} loads {reference} from elsewhere"
        loaded = api.get(urlsplit(url).path)
        assert loaded.status_code == 200, (reference, loaded.status_code)
        assert loaded.content, reference


def test_swagger_ui_is_told_not_to_call_the_online_validator(api: Api) -> None:
    assert '"validatorUrl": null' in api.get("/docs").text
