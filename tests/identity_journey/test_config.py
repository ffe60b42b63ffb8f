"""The [enrolment] configuration section."""

from __future__ import annotations

import pytest

from gateway.config import EnrolmentConfig, parse_config
from gateway.errors import ConfigError


def test_enrolment_defaults_and_overrides() -> None:
    assert parse_config({}).enrolment == EnrolmentConfig(3, 30, 28, 7)
    config = parse_config({"enrolment": {"max_attempts": 5, "lockout_minutes": 1.5}})
    assert config.enrolment.max_attempts == 5 and config.enrolment.lockout_minutes == 1.5


@pytest.mark.parametrize(
    "section",
    [{"max_attempts": 0}, {"pin_days": -1}, {"lockout_minutes": "soon"}, {"tries": 3}],
)
def test_enrolment_refusals(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\[enrolment\]"):
        parse_config({"enrolment": section})
