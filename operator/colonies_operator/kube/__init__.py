"""The Kubernetes side of the operator: the API client (api.py) and the list+watch cache of its work (cache.py)."""
