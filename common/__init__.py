"""Shared code of every Lanner component: models, flow language, templating, plugins, backends."""
