"""The viewer's HTTP side: the page, its script, the JSON API and the pictures, as a Starlette app.

Every JSON answer is an analysis result's ``summary()`` — what the command's ``--json`` prints —
and every picture is drawn by ``onnxviz.render`` from the same result, so the server computes
nothing of its own. Endpoints are plain functions; Starlette runs them on its thread pool, and the
``Viewer`` serialises what touches the model. Errors are JSON ``{"error", "hint"}`` with a status:
400 for a bad request (unknown node, not a picture), 403/404 for a file that is not served, 413 for
an upload over the limit.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from onnxviz.errors import OnnxvizError, UsageError
from onnxviz.render import pictures as render
from onnxviz.render.viewer import activation_sprite, viewer_page
from onnxviz.serve.files import Refused, inside, media_type
from onnxviz.serve.viewer import UPLOAD_LIMIT, Viewer

STATIC = Path(__file__).parent / "static"
# No script, style or picture from anywhere but this server; nothing may frame the page.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise Refused(400, f"The request needs '{name}'.")
    return value


def _number(request: Request, name: str, default: int | None) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise Refused(400, f"'{name}' must be an integer; got '{text}'.") from None


def _png(rgb) -> Response:
    return Response(render.png_bytes(rgb), media_type="image/png", headers=HEADERS)


def create_app(viewer: Viewer) -> Starlette:
    """The Starlette app serving ``viewer``."""

    def page(request: Request) -> Response:
        html = viewer_page(viewer.table, viewer.image_names(), viewer.galleries())
        return HTMLResponse(html, headers=HEADERS)

    def static(request: Request) -> Response:
        return FileResponse(inside(STATIC, request.path_params["name"]), headers=HEADERS)

    def folder_file(root: Path | None, what: str):
        def serve(request: Request) -> Response:
            if root is None:
                raise Refused(404, f"No {what} folder is served.")
            path = inside(root, request.path_params["path"])
            return FileResponse(path, media_type=media_type(path), headers=HEADERS)

        return serve

    def layers(request: Request) -> Response:
        return JSONResponse(viewer.table)

    def images(request: Request) -> Response:
        return JSONResponse({"images": viewer.image_names()})

    def gallery(request: Request) -> Response:
        found = viewer.galleries()
        return JSONResponse({"galleries": [{"title": g.title, "pictures": g.pictures} for g in found]})

    async def upload(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > UPLOAD_LIMIT:
            raise Refused(413, f"The upload is over the limit of {UPLOAD_LIMIT // 2**20} MB.")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > UPLOAD_LIMIT:
                raise Refused(413, f"The upload is over the limit of {UPLOAD_LIMIT // 2**20} MB.")
        return JSONResponse({"image": viewer.upload(bytes(data))})

    def picture(request: Request) -> Response:
        return _png(viewer.picture(_query(request, "image")))

    def projection(request: Request):
        rule = request.query_params.get("rule", "deconvnet")
        args = (_query(request, "image"), _query(request, "node"), _number(request, "channel", None), rule)
        return viewer.project(*args)

    def project(request: Request) -> Response:
        return JSONResponse(projection(request).summary())

    def project_png(request: Request) -> Response:
        result = projection(request)
        return _png(render.projection_to_rgb(result.projections[0], result.layout, result.preprocessing.order))

    def activations(request: Request) -> Response:
        return JSONResponse(viewer.activations(_query(request, "image"), _query(request, "node")).summary())

    def activations_png(request: Request) -> Response:
        return _png(activation_sprite(viewer.activations(_query(request, "image"), _query(request, "node")).maps))

    def occlusion(request: Request):
        patch, stride = _number(request, "patch", 16), _number(request, "stride", 4)
        return viewer.occlude(_query(request, "image"), patch, stride, request.query_params.get("job"))

    def occlude(request: Request) -> Response:
        return JSONResponse(occlusion(request).summary())

    def occlude_png(request: Request) -> Response:
        result = occlusion(request)
        picture = viewer.picture(_query(request, "image"))
        return _png(render.heatmap_overlay(picture, result.scores, result.grid.patch, result.grid.stride))

    def progress(request: Request) -> Response:
        done, total = viewer.progress.get(_query(request, "job"), (0, 0))
        return JSONResponse({"done": done, "total": total})

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/images/{path:path}", folder_file(viewer.images, "--images")),
        Route("/state/{path:path}", folder_file(viewer.state, "--state")),
        Route("/api/layers", layers),
        Route("/api/images", images),
        Route("/api/galleries", gallery),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/picture.png", picture),
        Route("/api/project", project),
        Route("/api/project.png", project_png),
        Route("/api/activations", activations),
        Route("/api/activations.png", activations_png),
        Route("/api/occlude", occlude),
        Route("/api/occlude.png", occlude_png),
        Route("/api/progress", progress),
    ]
    handlers = {Refused: _refused, OnnxvizError: _failed}
    return Starlette(routes=routes, exception_handlers=handlers)


def _refused(request: Request, exc: Exception) -> Response:
    status, message = (exc.status, exc.message) if isinstance(exc, Refused) else (400, str(exc))
    return JSONResponse({"error": message, "hint": None}, status_code=status, headers=HEADERS)


def _failed(request: Request, exc: Exception) -> Response:
    """An analysis's own error: the user asked for something impossible (400), or it failed (500)."""
    message, hint = (exc.message, exc.hint) if isinstance(exc, OnnxvizError) else (str(exc), None)
    status = 400 if isinstance(exc, UsageError) else 500
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=HEADERS)
