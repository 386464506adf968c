"""colonies-operator: turns a Kubernetes cluster into a ColonyOS executor."""

__version__ = "0.1.0"
