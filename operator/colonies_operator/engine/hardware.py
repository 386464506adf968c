"""The executor's capabilities in Colonies, kept equal to the cluster's Nodes (updateexecutormsg on every change)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..colonies import ColoniesError
from ..core.capabilities import capabilities_for, gpu_models_provided
from ..core.config import ExecutorConfig
from ..kube.cache import NodeView
from .registration import Identity

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


class CapabilitiesReporter:
    """Watches the Nodes for one executor and sends its capabilities when they change. `on_gpu_models` is told
    the GPU models of the cluster's nodes (cordoned ones included) whenever the capabilities are computed."""

    def __init__(self, nodes: NodeView, subscriber: str, name: str,
                 on_gpu_models: Callable[[frozenset[str]], None]) -> None:
        self._nodes, self._subscriber, self._name = nodes, subscriber, name
        self._on_gpu_models = on_gpu_models
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sent: dict[str, Any] | None = None
        self._config: ExecutorConfig | None = None
        self._identity: Identity | None = None

    def subscribe(self) -> None:
        self._nodes.subscribe(self._subscriber, self._changed.set)

    def current(self, config: ExecutorConfig) -> dict[str, Any] | None:
        """The cluster's hardware for this executor, from the view of the Nodes; None while it is not known."""
        nodes = self._nodes.nodes()
        if nodes is None:
            return None
        capabilities = capabilities_for(nodes, config)
        self._on_gpu_models(gpu_models_provided(nodes, config))
        return capabilities

    def registered(self, config: ExecutorConfig, identity: Identity, sent: dict[str, Any] | None) -> None:
        """The executor is registered (with `sent`): from now on, changes are sent, and the spec may have changed
        them (GPU label, node selector), so they are looked at once."""
        self._config, self._identity, self._sent = config, identity, sent
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"capabilities-{self._name}")
        self._changed.set()

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            config, identity = self._config, self._identity
            capabilities = self.current(config) if config else None
            if capabilities is None or identity is None or capabilities == self._sent:
                continue
            try:
                await identity.client.update_capabilities(config.colony_name, config.executor_name, capabilities,
                                                          identity.prvkey)
            except ColoniesError as err:
                log.info("executor %s: cannot update its capabilities yet (%s)", self._name, err)
                await asyncio.sleep(RETRY_SECONDS)
                self._changed.set()
                continue
            self._sent = capabilities
            kinds = ", ".join(f"{h['nodes']}× {h['gpu']['name'] or 'no GPU'} {h['architecture']}"
                              for h in capabilities["hardware"]) or "no schedulable node"
            log.info("executor %s: capabilities updated: %s", self._name, kinds)

    async def stop(self) -> None:
        self._nodes.unsubscribe(self._subscriber)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
