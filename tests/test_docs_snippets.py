"""docs/using-outputs.md's snippets and the README's "Using the outputs" section, run as written
(bash `medcurate export` lines, then each python block, in document order) from a folder laid out
like the project after the demo."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


DOC = Path(__file__).resolve().parents[1] / "docs" / "using-outputs.md"
README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def readme_section() -> str:
    return README.read_text(encoding="utf-8").split("## Using the outputs", 1)[1].split("\n## ", 1)[0]


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8")) + BLOCK.findall(readme_section())


def test_the_doc_has_snippets_and_a_short_readme_section():
    assert sum(1 for lang, _ in BLOCK.findall(DOC.read_text(encoding="utf-8")) if lang == "python") >= 8
    section = readme_section()
    assert len(section.strip().splitlines()) <= 40 and "medcurate.load" in section and "medcurate export" in section


def test_snippets_run_as_written(demo, tmp_path):
    for client in ("torch", "torchvision", "monai", "datasets", "mlcroissant", "webdataset"):
        pytest.importorskip(client)
    (tmp_path / "results").mkdir()
    for dataset in ("inbreast", "fetal_planes_db", "acdc", "drive"):
        (tmp_path / "results" / dataset).symlink_to(demo(dataset), target_is_directory=True)
    cli = shutil.which("medcurate", path=str(Path(sys.executable).parent))
    cli = [cli] if cli else [sys.executable, "-m", "medcurate"]
    ran = 0
    for lang, code in blocks():
        if lang == "bash":
            for line in code.splitlines():
                if line.startswith("medcurate export"):
                    args = line.split("#", 1)[0].split()[1:]
                    done = subprocess.run(cli + args, cwd=tmp_path, capture_output=True, text=True)
                    assert done.returncode == 0, (line, done.stderr[-2000:])
                    ran += 1
        else:
            done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                  env={"HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "HOME": str(tmp_path),
                                       "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"})
            assert done.returncode == 0, (code, done.stderr[-3000:])
            ran += 1
    assert ran >= 20
