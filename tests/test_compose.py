"""The compose file parses, forms a sound cluster, and configures the s2r services with settings
the code really reads (no Docker engine here, so this is as far as it can be checked)."""

import re
from dataclasses import fields

import yaml

from assistant.retrieval.store import Layout
from assistant.settings import ENV_PREFIX, Settings
from tests.conftest import ROOT

NODES = ("qdrant-1", "qdrant-2", "qdrant-3")


def interpolate(value: object) -> str:
    """What compose does to ``${VAR:-default}`` with VAR unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def load() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_images_are_pinned():
    for name, service in load().items():
        image = service["image"]
        assert ":" in image and not image.endswith((":latest", ":server")), name
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", load()["qdrant-1"]["image"])


def test_three_node_cluster_bootstraps_from_node_one():
    services = load()
    for i, name in enumerate(NODES, start=1):
        node = services[name]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        command = node["command"]
        assert command[command.index("--uri") + 1] == f"http://{name}:6335"
        if i > 1:
            assert command[command.index("--bootstrap") + 1] == "http://qdrant-1:6335"
            assert node["depends_on"]["qdrant-1"]["condition"] == "service_healthy"
        assert "/readyz" in node["healthcheck"]["test"][-1]
        assert node["volumes"] == [f"{name}:/qdrant/storage"]  # each node its own storage
    published = [p for n in NODES for p in services[n].get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published) and "6335" not in str(published)


def test_s2r_services_use_settings_the_code_reads():
    services = load()
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    for name in ("s2r", "api"):
        env = {k: interpolate(v) for k, v in services[name]["environment"].items()}
        assert set(env) <= known, set(env) - known
        settings = Settings.load(**{k[len(ENV_PREFIX):].lower(): v for k, v in env.items()})
        assert settings.qdrant_url == "http://qdrant-1:6333" and not settings.uses_embedded_store
        layout = Layout.from_settings(settings)
        assert layout.replication_for(len(NODES)) >= 2
        assert layout.shards % len(NODES) == 0  # shards spread evenly over the nodes
        assert layout.quantized and settings.qdrant_read_consistency == "majority"
        assert set(services[name]["depends_on"]) == set(NODES)
    assert services["api"]["command"][0] == "serve"
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]


def test_llm_server_is_an_optional_profile():
    llm = load()["llm"]
    assert llm["profiles"] == ["llm"]
    assert "--port" in llm["command"] and "8080" in llm["command"]
    assert "S2R_LLM_URL" in load()["api"]["environment"]
