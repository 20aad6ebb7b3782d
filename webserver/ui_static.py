"""The built web UI (``make ui``) under ``/ui/``: files as they are, any other path the SPA's
``index.html`` so that the router of the page handles it (history mode)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

UI_DIR = Path(__file__).parent / "static" / "ui"
# hashed file names: a built asset never changes under its name
_IMMUTABLE = "public, max-age=31536000, immutable"


def _ui_router(root: Path) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    resolved_root = root.resolve()

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/ui/")

    @router.get("/ui")
    @router.get("/ui/{path:path}")
    async def ui(path: str = "") -> Response:
        index = resolved_root / "index.html"
        if not index.is_file():
            return JSONResponse(
                {"message": "the web UI is not built: run `make ui` (needs node and npm)"},
                status_code=404,
            )
        candidate = (resolved_root / path).resolve()
        if path and candidate.is_file() and candidate.is_relative_to(resolved_root):
            headers = {"Cache-Control": _IMMUTABLE} if path.startswith("assets/") else None
            return FileResponse(candidate, headers=headers)
        if path.startswith("assets/"):  # a stale asset name: a 404, not the page
            return JSONResponse({"message": f"no UI asset {path}"}, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return router


def mount_ui(app: FastAPI, root: Path = UI_DIR) -> None:
    app.include_router(_ui_router(root))
