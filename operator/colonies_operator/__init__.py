"""colonies-operator: turns a Kubernetes cluster into a ColonyOS executor."""

# The one version of the project: the package, the image's tag and label, the chart's version and appVersion (and
# so its default image tag). hack/set-version.sh changes every copy; tests/packaging/test_version.py checks them.
__version__ = "0.2.0"
