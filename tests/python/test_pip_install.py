"""`pip install ./python` into a virtual environment gives a working engine package there."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

BINARY = Path(os.environ.get("ENGINE_BINARY_DIR", Path(__file__).parents[2] / "build"))
PACKAGE_SOURCE = Path(__file__).parents[2] / "python"

CHECK = """
import os, sys, numpy as np, engine
from engine.proto import caffe_pb2
assert engine.__file__.startswith(sys.prefix), engine.__file__
open("net.prototxt", "w").write('layer { name: "x" type: "Input" top: "x" '
    'input_param { shape { dim: 1 dim: 3 } } } '
    'layer { name: "s" type: "Softmax" bottom: "x" top: "p" }')
net = engine.Net("net.prototxt", engine.TEST)
p = net.forward(x=np.log(np.array([[1.0, 2.0, 5.0]], np.float32)))["p"]
assert np.allclose(p, [[0.125, 0.25, 0.625]]), p
assert caffe_pb2.NetParameter is not None
print("ok", engine.__version__)
"""


def test_pip_installs_the_package_into_a_virtual_environment(tmp_path):
    # The environment sees Debian's numpy and protobuf; nothing is fetched (--no-deps and the
    # system's setuptools), and the engine's existing build is used (ENGINE_BUILD_DIR).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    source = tmp_path / "python"  # a copy, so pip's build folders stay out of the checkout
    shutil.copytree(PACKAGE_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    environment = dict(os.environ, ENGINE_BUILD_DIR=str(BINARY), PYTHONPATH="",
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation",
                              "--no-deps", "--no-index", str(source)],
                             capture_output=True, text=True, env=environment)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], cwd=work,
                            capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok 1.0.0"


def test_pip_install_names_a_build_folder_without_the_package(tmp_path):
    source = tmp_path / "python"
    shutil.copytree(PACKAGE_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    empty = tmp_path / "empty_build"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                             "--no-deps", "--no-index", "-w", str(tmp_path / "wheels"), str(source)],
                            capture_output=True, text=True,
                            env=dict(os.environ, ENGINE_BUILD_DIR=str(empty)))
    assert result.returncode != 0
    assert "holds no built Python package" in result.stdout + result.stderr
