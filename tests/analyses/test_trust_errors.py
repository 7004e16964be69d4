"""``sanity`` and ``faithfulness`` refuse bad options with exit 2 and one paragraph naming the flag."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES

MODEL = FIXTURES / "attr_vgg.onnx"


@pytest.mark.parametrize(
    "command, args, said",
    [
        ("sanity", ["--method", "nonsense"], "--method"),
        ("sanity", ["--method", "saliency", "--steps", "0"], "--steps"),
        ("faithfulness", ["--method", "nonsense"], "--method"),
        ("faithfulness", ["--method", "random", "--metric", "erasure"], "--metric"),
        ("faithfulness", ["--method", "random", "--steps", "0"], "--steps"),
        ("faithfulness", ["--method", "random", "--steps", "-3"], "--steps"),
        ("faithfulness", ["--method", "random", "--baseline", "grey"], "--baseline"),
    ],
)
def test_bad_options_exit_2_naming_the_flag(capsys, tmp_path, command, args, said):
    image = tmp_path / "x.npy"
    np.save(image, np.zeros((3, 64, 64), np.float32))
    code, _, err = run_cli(capsys, command, MODEL, image, *args)
    assert code == 2
    assert said in err
    assert "Traceback" not in err and "internal error" not in err.lower()
