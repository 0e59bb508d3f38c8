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
        ("S2R_SPOKEN_RETRIEVER", "whisper", "spoken_retriever must be s2r, hybrid, e2e or"),
        ("S2R_QDRANT_QUANTIZATION", "int4", "qdrant_quantization must be"),
        ("S2R_QDRANT_READ_CONSISTENCY", "most", "qdrant_read_consistency must be"),
        ("S2R_LLM_URL", "llm:8080", "llm_url must start with http"),
        ("S2R_ANSWER_TOP_K", "0", "answer_top_k must be >= 1"),
        # a tuned constant that was a setting once is refused, not silently ignored
        ("S2R_FUSION", "rrf", "S2R_FUSION: no longer a setting but a measured constant"),
        ("S2R_COVERAGE_WEIGHT", "0", "S2R_COVERAGE_WEIGHT: no longer a setting"),
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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hybrid_e2e_weight": 1.5}, "hybrid_e2e_weight must be between 0 and 1"),
        ({"fusion": "max"}, "fusion must be dbsf or rrf"),
        ({"s2r_threads": -1}, "s2r_threads must be >= 0"),
        ({"s2r_vocabulary": "tiny"}, "s2r_vocabulary must be collection or full"),
        ({"hybrid_context_hits": -2}, "hybrid_context_hits must be >= 0"),
        ({"hybrid_trust_logprob": 0.5}, "hybrid_trust_logprob must be <= 0"),
        ({"hybrid_context_nbest": "merge"}, "hybrid_context_nbest must be .join. or .replace."),
        ({"coverage_depth": 0}, "coverage_depth must be >= 1"),
        ({"vad_frame_ms": 25}, "vad_frame_ms must be 10, 20 or 30"),
    ],
)
def test_tuned_constants_are_checked_when_a_test_or_script_changes_them(tmp_path, change,
                                                                       message):
    with pytest.raises(SettingsError, match=message):
        Settings.load(data_dir=tmp_path, **change)


def test_tuned_constants_change_through_load_and_replace(tmp_path):
    settings = Settings.load(data_dir=tmp_path, fusion="rrf", chunk_tokens=120)
    assert settings.tuning.fusion == "rrf" and settings.chunk_tokens == 120
    changed = settings.replace(coverage_weight=0.0, collection="other")
    assert changed.tuning.coverage_weight == 0.0 and changed.tuning.fusion == "rrf"
    assert changed.collection == "other" and settings.tuning.coverage_weight == 3.0


def test_a_config_file_cannot_set_a_tuned_constant(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('fusion = "rrf"\n')
    with pytest.raises(SettingsError, match="unknown setting.*fusion"):
        Settings.load(data_dir=tmp_path, config=str(cfg))


def test_at_most_forty_user_settings():
    from dataclasses import fields

    assert len([f for f in fields(Settings) if f.name != "tuning"]) <= 40
