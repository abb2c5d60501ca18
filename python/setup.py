"""`pip install ./python`: the engine package with its compiled core, built by the project's
CMake (into ../build, or the build folder named by ENGINE_BUILD_DIR, used as it is). The Python
files come from python/engine; the compiled module and the generated schema from the build."""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent


class CMakeBuild(build_ext):
    """Builds (or finds) build/python/engine and copies _engine and engine_pb2.py out of it."""

    def run(self):
        given = os.environ.get("ENGINE_BUILD_DIR")
        build = Path(given).resolve() if given else SOURCE / "build"
        package = build / "python" / "engine"
        if not given:
            subprocess.check_call(["cmake", "-S", str(SOURCE), "-B", str(build)])
            subprocess.check_call(["cmake", "--build", str(build), "--target", "engine_python",
                                   "-j", str(os.cpu_count() or 1)])
        compiled = sorted(package.glob("_engine*.so"))
        schema = package / "proto" / "engine_pb2.py"
        if not compiled or not schema.exists():
            raise RuntimeError("%s holds no built Python package (_engine*.so and "
                               "proto/engine_pb2.py): build the engine there first" % package)
        for extension in self.extensions:
            target = Path(self.get_ext_fullpath(extension.name))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(compiled[-1], target)
            (target.parent / "proto").mkdir(exist_ok=True)
            shutil.copy2(schema, target.parent / "proto" / "engine_pb2.py")


setup(
    packages=["engine", "engine.proto"],
    ext_modules=[Extension("engine._engine", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
