"""The backends a component runs on, bundled so factories take one argument."""

from __future__ import annotations

from dataclasses import dataclass

from common.queue.base import Queue
from common.repository.base import Repositories
from common.settings import Settings
from common.storage.base import Storage


@dataclass
class Backends:
    """Queue, repositories and internal storage chosen by the settings."""

    queue: Queue
    repositories: Repositories
    storage: Storage
    settings: Settings
