"""The budget planners' web page: ``/`` and its static files, read from the package."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException, Response

__all__ = ["router", "STATIC_FILES"]

router = APIRouter(include_in_schema=False)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def _static_root() -> Traversable:
    return resources.files("service").joinpath("static")


def _index() -> dict[str, Traversable]:
    """Every shipped static file by its relative path (the only names ever served)."""
    out: dict[str, Traversable] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            elif "." + child.name.rsplit(".", 1)[-1] in _TYPES:
                out[name] = child

    walk(_static_root(), "")
    return out


STATIC_FILES: dict[str, Traversable] = _index()
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def _serve(name: str) -> Response:
    entry = STATIC_FILES.get(name)
    if entry is None:  # the request's path is only ever a lookup key, never opened
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    suffix = "." + name.rsplit(".", 1)[-1]
    return Response(
        entry.read_bytes(),
        media_type=_TYPES[suffix],
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/", response_class=Response)
async def index() -> Response:
    """The web page."""
    return _serve("index.html")


@router.get("/static/{name:path}", response_class=Response)
async def static(name: str) -> Response:
    """A shipped static file (HTML, JS, CSS, licence-free assets)."""
    return _serve(name)
