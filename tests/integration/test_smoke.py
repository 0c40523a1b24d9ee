"""The build produced the binaries the other tests drive."""
import os


def test_build_dir_exists(build_dir):
    assert os.path.isdir(build_dir)
