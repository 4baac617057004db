"""Assertions shared by the importer tests."""

import pytest

from snn2hw.importers import load_model


def assert_import_fails(exc_type, path, *fragments, **options) -> str:
    """Import ``path`` (with ``load_model`` ``options``); assert ``exc_type`` with a one-line message containing
    every fragment."""
    with pytest.raises(exc_type) as info:
        load_model(path, **options)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message
