"""Settings: read from DATELINE_* in the environment, overridden by options given."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.errors import UsageError
from services.settings import Settings


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each field is DATELINE_<NAME>, typed as the field says."""
    monkeypatch.setenv("DATELINE_HTTP_PORT", "9100")
    monkeypatch.setenv("DATELINE_REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("DATELINE_DATA_DIR", "/tmp/dl-data")
    settings = Settings.load()
    assert settings.http_port == 9100
    assert settings.redis_url == "redis://elsewhere:6379/0"
    assert settings.data_dir == Path("/tmp/dl-data")


def test_options_given_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command-line option wins over the environment's value."""
    monkeypatch.setenv("DATELINE_HTTP_PORT", "9100")
    monkeypatch.setenv("DATELINE_TOKEN", "from-env")
    settings = Settings.load(http_port=9200, token="from-flag")
    assert (settings.http_port, settings.token) == (9200, "from-flag")


def test_options_not_given_leave_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An option passed as None means not given: the environment's value, else the default."""
    monkeypatch.setenv("DATELINE_WS_PORT", "9301")
    monkeypatch.delenv("DATELINE_API_URL", raising=False)
    settings = Settings.load(ws_port=None, api_url=None)
    assert settings.ws_port == 9301
    assert settings.api_url == "http://127.0.0.1:8000"


def test_an_unreadable_value_is_a_usage_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DATELINE_HTTP_PORT=abc is a UsageError that names DATELINE_HTTP_PORT, not a traceback."""
    monkeypatch.setenv("DATELINE_HTTP_PORT", "abc")
    with pytest.raises(UsageError) as refused:
        Settings.load()
    assert "DATELINE_HTTP_PORT" in refused.value.message


def test_an_unreadable_option_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value given as an option is named by its setting as well."""
    monkeypatch.delenv("DATELINE_FSYNC", raising=False)
    with pytest.raises(UsageError) as refused:
        Settings.load(fsync="sometimes")
    assert "DATELINE_FSYNC" in refused.value.message
