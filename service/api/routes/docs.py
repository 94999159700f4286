"""The OpenAPI UI at ``/docs``, from the Swagger UI files shipped in ``static/vendor``.

No request leaves the machine: the script, the style sheet and the icon are served by this
service (``SPENDCAST_DOCS=false`` hides the page; ``/openapi.json`` stays).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

__all__ = ["router", "ASSETS"]

router = APIRouter(include_in_schema=False)

_VENDOR = "/static/vendor/swagger-ui/"
ASSETS = (
    _VENDOR + "swagger-ui-bundle.js",
    _VENDOR + "swagger-ui.css",
    _VENDOR + "favicon-32x32.png",
)
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI on this service's ``/openapi.json``."""
    js, css, icon = ASSETS
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API",
        swagger_js_url=js,
        swagger_css_url=css,
        swagger_favicon_url=icon,
    )
    page.headers["Content-Security-Policy"] = _CSP
    return page
