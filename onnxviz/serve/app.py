"""The viewer's HTTP side: the page, its script, the JSON API and the pictures, as a Starlette app.

Every JSON answer is an analysis result's ``summary()`` — what the command's ``--json`` prints —
and every picture is drawn by ``onnxviz.render`` from the same result, so the server computes
nothing of its own; ``/api/analyses`` is the menu of registered analyses, and ``/api/run/NAME``
(and its ``.png``) computes any of them; ``/api/methods`` is the method menu, and ``/api/explain``
(and its ``.png``: the method's panel; ``/api/explain/seen.png``: the detections or classes the
target was picked from) one method's map for a target of any kind. Endpoints are plain
functions; Starlette runs them on its thread pool, and the ``Viewer`` serialises what touches the
model. Errors are JSON ``{"error", "hint"}`` with a status: 400 for a bad request (unknown node,
not a picture), 403/404 for a file that is not served, 413 for an upload over the limit.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from onnxviz.errors import OnnxvizError, UsageError
from onnxviz.render import pictures as render
from onnxviz.render.viewer import activation_sprite, viewer_page
from onnxviz.serve.files import Refused, inside, media_type
from onnxviz.serve.viewer import OCCLUSION_PATCH, OCCLUSION_STRIDE, UPLOAD_LIMIT, Viewer, menu, methods

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


class Endpoints:
    """The handlers of one viewer's routes, each a few lines over a ``Viewer`` call."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    def page(self, request: Request) -> Response:
        viewer = self.viewer
        occlusion = (OCCLUSION_PATCH, OCCLUSION_STRIDE)
        page = viewer_page(viewer.table, viewer.image_names(), viewer.galleries(), occlusion)
        return HTMLResponse(page, headers=HEADERS)

    def static(self, request: Request) -> Response:
        return FileResponse(inside(STATIC, request.path_params["name"]), headers=HEADERS)

    def images_file(self, request: Request) -> Response:
        return _folder_file(self.viewer.images, "--images", request.path_params["path"])

    def state_file(self, request: Request) -> Response:
        return _folder_file(self.viewer.state, "--state", request.path_params["path"])

    def layers(self, request: Request) -> Response:
        return JSONResponse(self.viewer.table)

    def images(self, request: Request) -> Response:
        return JSONResponse({"images": self.viewer.image_names()})

    def galleries(self, request: Request) -> Response:
        found = self.viewer.galleries()
        return JSONResponse({"galleries": [{"title": g.title, "pictures": g.pictures} for g in found]})

    async def upload(self, request: Request) -> Response:
        """The body is the picture's bytes; counted as it arrives, so an oversized one is never kept."""
        too_big = Refused(413, f"The upload is over the limit of {UPLOAD_LIMIT // 2**20} MB.")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > UPLOAD_LIMIT:
            raise too_big
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > UPLOAD_LIMIT:
                raise too_big
        return JSONResponse({"image": await run_in_threadpool(self.viewer.upload, bytes(data))})

    def picture(self, request: Request) -> Response:
        return _png(self.viewer.picture(_query(request, "image")))

    def _projection(self, request: Request):
        rule = request.query_params.get("rule", "deconvnet")
        args = (_query(request, "image"), _query(request, "node"), _number(request, "channel", None), rule)
        return self.viewer.project(*args)

    def project(self, request: Request) -> Response:
        return JSONResponse(self._projection(request).summary())

    def project_png(self, request: Request) -> Response:
        result = self._projection(request)
        return _png(render.projection_to_rgb(result.projections[0], result.layout, result.preprocessing.order))

    def activations(self, request: Request) -> Response:
        return JSONResponse(self.viewer.activations(_query(request, "image"), _query(request, "node")).summary())

    def activations_png(self, request: Request) -> Response:
        grid = self.viewer.activations(_query(request, "image"), _query(request, "node"))
        return _png(activation_sprite(grid.maps))

    def _occlusion(self, request: Request):
        patch, stride = _number(request, "patch", OCCLUSION_PATCH), _number(request, "stride", OCCLUSION_STRIDE)
        job, target = request.query_params.get("job"), request.query_params.get("target") or None
        return self.viewer.occlude(_query(request, "image"), patch, stride, job, target)

    def occlude(self, request: Request) -> Response:
        return JSONResponse(self._occlusion(request).summary())

    def occlude_png(self, request: Request) -> Response:
        result = self._occlusion(request)
        picture = self.viewer.picture(_query(request, "image"))
        return _png(render.heatmap_overlay(picture, result.scores, result.grid.patch, result.grid.stride))

    def analyses(self, request: Request) -> Response:
        """The menu, read from the registry now: an analysis registered since the start is in it."""
        return JSONResponse({"analyses": menu()})

    def methods(self, request: Request) -> Response:
        return JSONResponse({"methods": methods()})

    def _explanation(self, request: Request):
        method, target = _query(request, "method"), request.query_params.get("target") or None
        return self.viewer.explain(_query(request, "image"), method, target)

    def explain(self, request: Request) -> Response:
        return JSONResponse(self._explanation(request).summary())

    def explain_png(self, request: Request) -> Response:
        result = self._explanation(request)
        return _png(result.drawn(result.panels[0]))

    def explain_seen_png(self, request: Request) -> Response:
        """The picture as the model saw the target: a detector's boxes, a segmenter's classes."""
        return _png(self._explanation(request).seen())

    def _run(self, request: Request):
        image, node = request.query_params.get("image"), request.query_params.get("node")
        return self.viewer.run(request.path_params["name"], image, node)

    def run(self, request: Request) -> Response:
        return JSONResponse(self._run(request).summary())

    def run_png(self, request: Request) -> Response:
        result = self._run(request)
        try:
            return _png(result.figure())
        except NotImplementedError:
            raise Refused(404, f"{request.path_params['name']} draws no picture.") from None

    def progress(self, request: Request) -> Response:
        done, total = self.viewer.progress.get(_query(request, "job"), (0, 0))
        return JSONResponse({"done": done, "total": total})

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page),
            Route("/static/{name}", self.static),
            Route("/images/{path:path}", self.images_file),
            Route("/state/{path:path}", self.state_file),
            Route("/api/layers", self.layers),
            Route("/api/images", self.images),
            Route("/api/galleries", self.galleries),
            Route("/api/upload", self.upload, methods=["POST"]),
            Route("/api/picture.png", self.picture),
            Route("/api/project", self.project),
            Route("/api/project.png", self.project_png),
            Route("/api/activations", self.activations),
            Route("/api/activations.png", self.activations_png),
            Route("/api/occlude", self.occlude),
            Route("/api/occlude.png", self.occlude_png),
            Route("/api/progress", self.progress),
            Route("/api/analyses", self.analyses),
            Route("/api/methods", self.methods),
            Route("/api/explain", self.explain),
            Route("/api/explain.png", self.explain_png),
            Route("/api/explain/seen.png", self.explain_seen_png),
            Route("/api/run/{name}.png", self.run_png),  # before the summary's route, which would take "NAME.png"
            Route("/api/run/{name}", self.run),
        ]


def create_app(viewer: Viewer, hosts: list[str] | None = None) -> Starlette:
    """The Starlette app serving ``viewer``; ``hosts``: the only ``Host`` headers answered (a server
    on localhost answers only to localhost names, so a page elsewhere cannot reach it by pointing
    its own domain at 127.0.0.1), None: any."""
    handlers = {Refused: _refused, OnnxvizError: _failed}
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)] if hosts else []
    return Starlette(routes=Endpoints(viewer).routes(), exception_handlers=handlers, middleware=middleware)


def _folder_file(root: Path | None, flag: str, name: str) -> Response:
    if root is None:
        raise Refused(404, f"No {flag} folder is served.")
    path = inside(root, name)
    return FileResponse(path, media_type=media_type(path), headers=HEADERS)


def _refused(request: Request, exc: Refused) -> Response:
    return JSONResponse({"error": exc.message, "hint": None}, status_code=exc.status, headers=HEADERS)


def _failed(request: Request, exc: OnnxvizError) -> Response:
    """An analysis's own error: the user asked for something impossible (400), or it failed (500)."""
    status = 400 if isinstance(exc, UsageError) else 500
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status, headers=HEADERS)
