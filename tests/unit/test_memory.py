"""Memory is handed back once a burst is over: when an executor that had many processes has none left."""

from __future__ import annotations

import asyncio

from colonies_operator import executor, memory
from colonies_operator.executor import ExecutorRuntime


def test_an_executor_going_idle_after_a_burst_releases_memory_once(monkeypatch):
    released: list[int] = []
    monkeypatch.setattr(memory, "release_soon", lambda: released.append(1))
    monkeypatch.setattr(executor, "STATUS_DEBOUNCE", 0)

    class Kube:
        async def patch_executor_status(self, namespace, name, status):
            pass

    async def main():
        runtime = ExecutorRuntime(Kube(), None, {"metadata": {"namespace": "ops", "name": "c"}}, asyncio.Semaphore(1))
        for size in (memory.BURST - 1, memory.BURST, 0):
            runtime.reconciler.attempts = {(str(i), 0): None for i in range(size)}
            runtime._changed()
            for remaining in range(size - 1, -1, -1):  # the processes end one by one
                runtime.reconciler.attempts = {(str(i), 0): None for i in range(remaining)}
                runtime._changed()
            await asyncio.sleep(0)
        return released

    # 99 at once: no release; 100: one; then an idle executor's changes: none
    assert asyncio.run(main()) == [1]

