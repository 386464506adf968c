pytest_plugins = ["tests.fixtures.colonies_server", "tests.fixtures.kube"]
