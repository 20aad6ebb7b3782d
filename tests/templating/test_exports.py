from __future__ import annotations

import common.templating


def test_public_surface_is_pinned() -> None:
    assert common.templating.__all__ == [
        "RenderContext",
        "check_syntax",
        "is_true",
        "render",
        "render_condition",
        "render_object",
        "render_typed",
    ]
