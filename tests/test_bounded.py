"""The bounded cache the slide pages read parsed documents through, and the loader's use of it."""

from __future__ import annotations

from bloodcell.bounded import BoundedCache
from bloodcell.settings import Settings
from bloodcell.slides.loader import UNREADABLE, load_cells
from bloodcell.storage import LocalStorage
from tests.support.common import image_bytes


def test_the_least_recently_stored_entry_goes_first_and_the_size_holds() -> None:
    # Arrange
    cache: BoundedCache[str, int] = BoundedCache(2)

    # Act
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)

    # Assert
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)


def test_an_unreadable_result_is_told_apart_every_time_it_is_read(
    settings: Settings, local: LocalStorage
) -> None:
    # Arrange: a result object that is no result document (written by hand, or half a disk)
    name = "lame-été-血-07/cellule été 1.jpg"
    local.write(settings.upload_bucket, name, image_bytes())
    local.write(settings.result_bucket, f"{name}.json", b"{not json")

    # Act: twice, as the page polls (the second read comes from the cache)
    first, second = (load_cells(local, settings, "lame-été-血-07") for _ in range(2))

    # Assert
    assert [(c.problem, c.result) for c in first] == [(UNREADABLE, None)]
    assert [(c.problem, c.result) for c in second] == [(UNREADABLE, None)]
