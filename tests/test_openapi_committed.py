import pytest

from scripts.gen_openapi import OUT, documents, render


@pytest.mark.parametrize("name", sorted(documents()))
def test_committed_document_is_current(name: str) -> None:
    path = OUT / name
    assert path.exists(), f"{path} missing: run `make openapi`"
    assert path.read_text() == render(documents()[name]), f"{name} is stale: run `make openapi`"
