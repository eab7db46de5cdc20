"""Note templates as data: the template language, its loader, forms and answers."""

from .registry import Registry, get_registry, init_app
from .schema import Field, Template, TemplateProblem

__all__ = ["Field", "Registry", "Template", "TemplateProblem", "get_registry", "init_app"]
