from pathlib import Path

import pytest

from assistant.settings import Settings, SettingsError


def test_defaults_are_offline_and_embedded(monkeypatch, tmp_path):
    monkeypatch.setenv("S2R_DATA_DIR", str(tmp_path))
    s = Settings.load()
    assert s.data_dir == tmp_path
    assert s.uses_embedded_store
    assert s.whisper_model == "" and s.embedder_model == ""  # = the bundled packages


def test_env_overrides_config_file_and_flags_override_env(monkeypatch, tmp_path):
    (tmp_path / "config.toml").write_text('collection = "from_file"\nchunk_tokens = 120\n')
    monkeypatch.setenv("S2R_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("S2R_CHUNK_TOKENS", "150")
    s = Settings.load()
    assert s.collection == "from_file"
    assert s.chunk_tokens == 150
    assert Settings.load(chunk_tokens=90).chunk_tokens == 90


def test_explicit_config_file(monkeypatch, tmp_path):
    cfg = tmp_path / "s2r.toml"
    cfg.write_text('qdrant_url = "http://qdrant:6333"\ntranscribe_audio = false\n')
    monkeypatch.setenv("S2R_CONFIG", str(cfg))
    s = Settings.load(data_dir=tmp_path)
    assert s.qdrant_url == "http://qdrant:6333" and not s.uses_embedded_store
    assert s.transcribe_audio is False


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("S2R_CHUNK_TOKENS", "many", "S2R_CHUNK_TOKENS='many' is not a valid int"),
        ("S2R_TRANSCRIBE_AUDIO", "maybe", "not a valid bool"),
        ("S2R_VAD_AGGRESSIVENESS", "7", "vad_aggressiveness must be"),
        ("S2R_EMBEDDER_BACKEND", "tensorflow", "embedder_backend must be"),
        ("S2R_SPOKEN_RETRIEVER", "whisper", "spoken_retriever must be s2r, hybrid, e2e or"),
        ("S2R_HYBRID_E2E_WEIGHT", "1.5", "hybrid_e2e_weight must be between 0 and 1"),
        ("S2R_FUSION", "max", "fusion must be dbsf or rrf"),
        ("S2R_S2R_THREADS", "-1", "s2r_threads must be >= 0"),
        ("S2R_S2R_VOCABULARY", "tiny", "s2r_vocabulary must be collection or full"),
        ("S2R_HYBRID_CONTEXT_HITS", "-2", "hybrid_context_hits must be >= 0"),
        ("S2R_HYBRID_TRUST_LOGPROB", "0.5", "hybrid_trust_logprob must be <= 0"),
        ("S2R_HYBRID_CONTEXT_NBEST", "merge", "hybrid_context_nbest must be .join. or .replace."),
        ("S2R_SOUND_MAX_WORDS", "-1", "sound_max_words must be >= 0"),
        ("S2R_COVERAGE_WEIGHT", "-1", "coverage_weight must be >= 0"),
        ("S2R_COVERAGE_DEPTH", "0", "coverage_depth must be >= 1"),
        ("S2R_COVERAGE_MAX_WORDS", "-3", "coverage_max_words must be >= 0"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch, tmp_path, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=message):
        Settings.load(data_dir=tmp_path)


def test_bad_config_files(monkeypatch, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("chunk_tokenz = 3\n")
    with pytest.raises(SettingsError, match="unknown setting.*chunk_tokenz"):
        Settings.load(data_dir=tmp_path, config=str(cfg))
    cfg.write_text("this is = = not toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load(data_dir=tmp_path, config=str(cfg))
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(data_dir=tmp_path, config=str(tmp_path / "nope.toml"))


def test_overlap_must_be_smaller_than_chunk():
    with pytest.raises(SettingsError, match="chunk_overlap_tokens"):
        Settings(data_dir=Path("."), chunk_tokens=50, chunk_overlap_tokens=50)
