"""The calibration page through NiceGUI's simulated user: the active version, the versions, the trail."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from bloodcell.calibration.registry import Registry
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from tests.test_calibration_registry import WHO, _add

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_calibration_page_shows_the_active_version_and_the_audit_trail(
    settings: Settings, user: User
) -> None:
    registry = Registry(LocalStorage(settings.data_dir), settings.model_bucket)
    version = _add(registry)
    registry.activate(version, WHO)

    await user.open("/calibration")

    await user.should_see(f"Active: {version}")
    await user.should_see(content=WHO)
    await user.should_see(content="activate")
