import yaml
from pydantic import Field

from medtune.config.sections.base import Section
from medtune.config.sections.security import SecuritySection
from medtune.security.keys import PUBLIC_PATHS, RouteClass, route_class_problems


def test_every_field_has_help_and_defaults_validate():
    sec = SecuritySection()
    for name, field in SecuritySection.model_fields.items():
        assert field.description, name
    assert sec.phi_policy == "redact" and sec.cors_origins == [] and not sec.allow_plaintext


def test_nests_into_the_serve_section_and_round_trips_yaml():
    class ServeLike(Section):  # what the lead adds to ServeSection when merging
        host: str = "127.0.0.1"
        security: SecuritySection = Field(default_factory=SecuritySection)

    cfg = ServeLike.model_validate(yaml.safe_load("security: {phi_policy: block, max_n: 2}"))
    assert cfg.security.phi_policy == "block" and cfg.security.max_n == 2
    assert ServeLike.model_validate(yaml.safe_load(yaml.safe_dump(cfg.model_dump()))) == cfg


def test_route_table_fails_closed():
    routes = {"/health": RouteClass.PUBLIC, "/v1/chat/completions": RouteClass.INFERENCE, "/v1/audit": RouteClass.AUDIT}
    assert route_class_problems(routes) == [] and PUBLIC_PATHS == {"/health", "/", "/static/{name}"}
    assert route_class_problems({**routes, "/v1/secret": None}) == ["/v1/secret: no route class (deny by default: give it one)"]
