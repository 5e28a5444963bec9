"""The bundle files: PLAN.md and secrets.env.example (MANIFEST.sha256 is the build's)."""

from __future__ import annotations

from .plan import describe, plan

__all__ = ["describe", "plan"]
