"""``onnxviz serve``: the live viewer (layer table, activations, projections, occlusion, galleries)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.cli.application import command
from onnxviz.cli.options import ModelArg, ModelOptions
from onnxviz.cli.output import err, load_notes, note
from onnxviz.errors import UsageError


def _folder(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.is_dir():
        raise UsageError(f"{flag} {path} is not a folder.", f"Give {flag} an existing folder, or leave it out.")
    return path


@command
def serve(
    model: ModelArg,
    options: ModelOptions,
    images: Annotated[Path | None, typer.Option("--images", help="Folder of pictures to pick from.")] = None,
    state: Annotated[
        Path | None, typer.Option("--state", help="Folder holding topk / maximize outputs to show as galleries.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (others than localhost: a warning).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
) -> None:
    """A local web viewer: click through layers and channels, projections and occlusion computed live."""
    images, state = _folder(images, "--images"), _folder(state, "--state")
    loaded = options.load(model)
    load_notes(loaded)
    try:
        from onnxviz import serve as server
    except ImportError as exc:
        raise UsageError(
            f"The viewer needs {exc.name}, which is not installed.", 'Install it with: pip install "onnxviz[serve]"'
        ) from None
    if host not in server.LOCAL_HOSTS:
        err.print(f"[bold yellow]warning:[/bold yellow] serving on {host}: anyone who can reach it sees the model.")
    server.check_bindable(host, port)
    note(f"serving {model.name} on http://{host}:{port}/ (Ctrl-C stops)")
    server.run(loaded, images, state, host, port)
