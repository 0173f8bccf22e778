"""The Textual app (`doctor` / `doctor tui PATH`). Nothing outside doctor/tui imports Textual."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from doctor.core.settings import Settings
    from doctor.tui.app import DoctorApp


def make_app(paths: list[Path] | list[str] | None = None, settings: Settings | None = None, **kwargs: Any) -> DoctorApp:
    """The app as the CLI and the tests build it."""
    from doctor.tui.app import DoctorApp

    return DoctorApp([Path(p) for p in (paths or [Path(".")])], settings=settings, **kwargs)
