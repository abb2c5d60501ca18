"""The README's Python example runs as written, from the repository root."""
import os
import re
import subprocess
from pathlib import Path

SOURCE = Path(os.environ.get("ENGINE_SOURCE_DIR", Path(__file__).parents[2]))
BINARY = Path(os.environ.get("ENGINE_BINARY_DIR", SOURCE / "build"))


def test_the_readme_python_example_runs():
    readme = (SOURCE / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README has no python example"
    # The example finds the package under build/python; point it at this build's.
    code = blocks[0].replace('"build/python"', repr(str(BINARY / "python")))
    result = subprocess.run(["/usr/bin/python3", "-c", code], cwd=SOURCE, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(64, 10) (500, 800)" in result.stdout
    assert "class 1" in result.stdout
