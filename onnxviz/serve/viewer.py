"""What the server knows between requests: the model, its folders, uploads and recent results.

Requests run on a thread pool, and a model's engine caches (``runtime/engines.py``) are plain
dicts that build a session on a miss. So every call into the model holds the viewer's one lock:
two requests for the same layer and rule cannot both build its projector, and a session is never
run by two threads at once. The results of the last calls are kept by what computed them, so the
page's JSON and PNG requests for one click cost one projection, and going back to a channel costs
nothing. Occlusion reports its progress into ``progress`` without the lock, so the page can poll it
while the sweep holds the lock.

The page's menu (``menu``) is read from the analysis registry on each request: every analysis
registered with ``viewer=True`` that reads one image or the model alone, computed by ``run`` with
its default options on the picture (and the layer) on show. Its method menu (``methods``) is
``explain``'s: one cam or attribution method at a time for the target picked (``explain``).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from onnxviz.analyses.explain.analysis import ATTRIBUTE_METHODS, CAM_METHODS
from onnxviz.analyses.occlusion import OccludeOptions
from onnxviz.analyses.registry import ANALYSES, Analysis, Subject
from onnxviz.api import Model
from onnxviz.data.preprocess import decoded, picture_from_tensor
from onnxviz.render.viewer import Gallery
from onnxviz.serve.files import Refused, galleries, image_names, inside

UPLOAD_LIMIT = 16 * 1024 * 1024
UPLOAD_PREFIX = "upload:"
KEPT_UPLOADS = 16
KEPT_RESULTS = 64
KEPT_JOBS = 64
# The occlusion form starts finer than the command's default: the picture on show is at the
# model's input size, often small (the demo's 64 px), where the default patch hides a quarter of it.
OCCLUSION_PATCH = OccludeOptions().patch // 2
OCCLUSION_STRIDE = OCCLUSION_PATCH // 4
# Three rules for two layers: toggling the rule, or going back to the previous layer, rebuilds nothing.
WARM_PROJECTORS = 6
WARM_SESSIONS = 8
MENU_SUBJECTS = (Subject.IMAGE, Subject.MODEL)  # what the page has on show: a picture, and the model


def menu() -> list[dict]:
    """The analyses the page offers, as its menu reads them: name, what it reads (``image`` or
    ``model``), its function's first paragraph as help, and whether it takes the layer on show
    (its options' ``node``)."""
    return [
        {
            "name": name,
            "subject": analysis.subject.value,
            "help": " ".join((inspect.getdoc(analysis.function) or name).split("\n\n")[0].split()),
            "layer": takes_layer(analysis),
        }
        for name, analysis in ANALYSES.items()
        if offered(analysis)
    ]


def methods() -> list[dict]:
    """The method menu: every method ``explain`` offers, and whether its map is drawn over the picture
    (a cam, at a layer's resolution) or beside it (an input-space attribution)."""
    return [
        *({"name": name, "drawn": "over"} for name in CAM_METHODS),
        *({"name": name, "drawn": "beside"} for name in ATTRIBUTE_METHODS),
    ]


def offered(analysis: Analysis) -> bool:
    """Whether the page's menu offers ``analysis``: registered for the viewer, reading what it shows."""
    return analysis.viewer and analysis.subject in MENU_SUBJECTS


def takes_layer(analysis: Analysis) -> bool:
    """Whether ``analysis`` reads a layer (its options' ``node``): the page gives it the one on show."""
    return "node" in {f.name for f in fields(analysis.options)}


class Viewer:
    """One model served with its ``images`` and ``state`` folders (either may be None)."""

    def __init__(self, model: Model, images: Path | None = None, state: Path | None = None) -> None:
        self.model = model
        self.images = images
        self.state = state
        self.lock = threading.Lock()
        self.uploads: OrderedDict[str, np.ndarray] = OrderedDict()
        self.results: OrderedDict[tuple, Any] = OrderedDict()
        self.progress: OrderedDict[str, tuple[int, int]] = OrderedDict()
        engines = model.engines
        engines.projectors.size = max(engines.projectors.size, WARM_PROJECTORS)
        engines.sessions.size = max(engines.sessions.size, WARM_SESSIONS)
        self.table = model.layers().summary()

    def image_names(self) -> list[str]:
        return image_names(self.images)

    def galleries(self) -> list[Gallery]:
        return galleries(self.state)

    def image(self, reference: str) -> tuple[tuple, Path | np.ndarray]:
        """The image a request names, and a key that changes when its content does: ``upload:ID``
        (an earlier upload) or a path under ``--images``."""
        if reference.startswith(UPLOAD_PREFIX):
            upload = self.uploads.get(reference)
            if upload is None:
                raise Refused(
                    404, f"No upload '{reference}': the server keeps its last {KEPT_UPLOADS}; upload it again."
                )
            return (reference,), upload
        if self.images is None:
            raise Refused(404, "No --images folder is served; upload a picture instead.")
        path = inside(self.images, reference)
        stat = path.stat()
        return (str(path), stat.st_mtime_ns, stat.st_size), path

    def upload(self, data: bytes) -> str:
        """Decode an uploaded picture (OpenCV, in memory) and keep it; its reference is its hash."""
        picture = decoded(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if picture is None:
            raise Refused(400, "The upload is not a picture OpenCV can read (PNG, JPEG, BMP, TIFF, WebP).")
        reference = UPLOAD_PREFIX + hashlib.sha256(data).hexdigest()[:16]
        self.uploads[reference] = cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)
        self.uploads.move_to_end(reference)
        while len(self.uploads) > KEPT_UPLOADS:
            self.uploads.popitem(last=False)
        return reference

    def picture(self, reference: str) -> np.ndarray:
        """The image as the model sees it (resized; a tensor input drawn back as a picture)."""
        key, image = self.image(reference)
        x, picture, _ = self._cached(("picture", key), lambda: self.model.prepare(image))
        return (
            picture if picture is not None else picture_from_tensor(x[0], self.model.layout, self.model.preprocessing)
        )

    def project(self, reference: str, node: str, channel: int | None, rule: str):
        key, image = self.image(reference)
        channels = None if channel is None else [channel]
        return self._cached(
            ("project", key, node, channel, rule),
            lambda: self.model.project(image, node=node, channels=channels, rule=rule),
        )

    def activations(self, reference: str, node: str):
        key, image = self.image(reference)
        return self._cached(("activations", key, node), lambda: self.model.activations(image, node=node))

    def occlude(self, reference: str, patch: int, stride: int, job: str | None = None, target: str | None = None):
        """Occlusion of ``target`` as spelled (None: the top-1 class; a detection, a mask);
        ``job`` names the progress entry the page polls."""
        key, image = self.image(reference)

        def report(done: int, total: int) -> None:
            if job:
                self.progress[job] = (done, total)

        if job:
            self.progress[job] = (0, 0)
            while len(self.progress) > KEPT_JOBS:
                self.progress.popitem(last=False)
        return self._cached(
            ("occlude", key, patch, stride, target),
            lambda: self.model.occlude(image, patch=patch, stride=stride, target=target, progress=report),
        )

    def explain(self, reference: str, method: str, target: str | None):
        """One method's map of the image for ``target`` as spelled (a class, ``detection:N``,
        ``box:...``, ``mask:predicted:K``; None: the image's top-1)."""
        key, image = self.image(reference)
        return self._cached(
            ("explain", key, method, target), lambda: self.model.explain(image, methods=[method], target=target)
        )

    def run(self, name: str, reference: str | None, node: str | None) -> Any:
        """The menu's analysis ``name`` with its default options, on image ``reference`` (None for an
        analysis of the model alone) and, where its options name a layer, on ``node``."""
        analysis = ANALYSES.get(name)
        if analysis is None or not offered(analysis):
            raise Refused(404, f"No analysis '{name}' in the viewer's menu.")
        layer = {"node": node} if node and takes_layer(analysis) else {}
        if analysis.subject is Subject.MODEL:
            return self._cached(("run", name, *layer.values()), lambda: getattr(self.model, name)(**layer))
        if not reference:
            raise Refused(400, f"{name} reads an image: the request needs 'image'.")
        key, image = self.image(reference)
        return self._cached(("run", name, key, *layer.values()), lambda: getattr(self.model, name)(image, **layer))

    def _cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The result of ``compute`` for ``key``, computed under the lock only when not kept."""
        with self.lock:
            if key in self.results:
                self.results.move_to_end(key)
                return self.results[key]
            result = compute()
            self.results[key] = result
            while len(self.results) > KEPT_RESULTS:
                self.results.popitem(last=False)
            return result
