"""Where the tests find the repository and their data files, wherever a test module sits."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "tests" / "data"
