"""The compose file parses and configures the service with settings the code really reads."""

from dataclasses import fields

import yaml

from assistant.settings import ENV_PREFIX, Settings
from tests.conftest import ROOT


def test_compose_services_and_settings_match_the_code():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"qdrant", "s2r", "api"} <= set(services)
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:v")  # pinned, not latest
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    for name in ("s2r", "api"):
        assert set(services[name]["environment"]) <= known, name
    assert services["api"]["command"][0] == "serve"
    env = services["s2r"]["environment"]
    assert env["S2R_QDRANT_URL"] == "http://qdrant:6333"
    assert Settings.load(**{k[len(ENV_PREFIX):].lower(): v for k, v in env.items()}).qdrant_url
    assert services["s2r"]["depends_on"]["qdrant"]["condition"] == "service_healthy"
