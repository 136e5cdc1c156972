from .provider import LocalProvider

__all__ = ["LocalProvider"]
