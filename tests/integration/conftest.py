"""Shared pytest fixtures: where the build is, and helpers that run the real dbtls binaries."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_dir():
    return os.environ.get("DBTLS_BUILD", str(ROOT / "build-asan"))
