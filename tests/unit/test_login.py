"""How the operator reaches the API server (handlers.connection): the pod's service account at the address
Kubernetes gives pods, else the kubeconfig as kopf reads it, and the official client only for a kubeconfig that
needs it (an exec plugin, an auth provider), with a message saying what to install when it is missing."""

from __future__ import annotations

import logging

import kopf
import pytest
import yaml

from colonies_operator import handlers

SETTINGS = kopf.OperatorSettings()
LOGGER = logging.getLogger("test")


def kubeconfig(tmp_path, user: dict) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443",
                                               "certificate-authority-data": "Q0E="}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ops"}}]}))
    return str(path)


@pytest.fixture
def outside_a_pod(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(handlers, "SERVICE_ACCOUNT_TOKEN", tmp_path / "no-token")


def test_in_a_pod_the_service_account_is_used_at_the_address_kubernetes_gives_pods(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(handlers, "SERVICE_ACCOUNT_TOKEN", token)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    info = handlers.connection(SETTINGS, LOGGER)
    assert info.server == "https://[fd00::1]:443" and info.token == "sa-token"
    assert info.ca_path == str(tmp_path / "ca.crt")


def test_outside_a_pod_a_kubeconfig_with_a_client_certificate_is_read_by_kopf(monkeypatch, tmp_path, outside_a_pod):
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path, {"client-certificate-data": "Q0VSVA==",
                                                           "client-key-data": "S0VZ"}))
    monkeypatch.setattr(kopf, "login_via_client", lambda **_: pytest.fail("the official client is not needed"))
    info = handlers.connection(SETTINGS, LOGGER)
    assert info.server == "https://10.0.0.1:6443" and info.certificate_data == "Q0VSVA=="


def test_a_kubeconfig_with_an_exec_plugin_goes_through_the_official_client(monkeypatch, tmp_path, outside_a_pod):
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path, {"exec": {"command": "aws", "apiVersion": "v1"}}))
    used = kopf.ConnectionInfo(server="https://eks.example.org", token="from-the-plugin")
    monkeypatch.setattr(kopf, "login_via_client", lambda **_: used)
    assert handlers.connection(SETTINGS, LOGGER) is used


def test_without_the_official_client_an_exec_plugin_says_what_to_install(monkeypatch, tmp_path, outside_a_pod):
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path, {"exec": {"command": "gke-gcloud-auth-plugin"}}))

    def no_client(**_):
        raise ImportError("No module named 'kubernetes'")
    monkeypatch.setattr(kopf, "login_via_client", no_client)
    with pytest.raises(kopf.LoginError, match=r"colonies-operator\[kubeconfig\]"):
        handlers.connection(SETTINGS, LOGGER)


def test_a_kubeconfig_that_cannot_be_read_says_so(monkeypatch, tmp_path, outside_a_pod):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(kopf.LoginError, match="cannot read the kubeconfig.*set KUBECONFIG"):
        handlers.connection(SETTINGS, LOGGER)


def test_no_credentials_at_all_says_where_they_come_from(monkeypatch, tmp_path, outside_a_pod):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kopf.LoginError, match="service account, or set KUBECONFIG"):
        handlers.connection(SETTINGS, LOGGER)
