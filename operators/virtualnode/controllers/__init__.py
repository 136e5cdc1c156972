"""The virtual node's controllers: each reconciles one kind of object from informer caches."""
