"""The one Kubernetes client stack of sk8s (asyncio, aiohttp): a REST client, list+watch
informers, a keyed work queue and an event recorder, as client-go's parts."""
