"""Whether Kubernetes takes this executor's Jobs at all: a dry run of a Job like its own.

A namespace that does not exist, missing rights or an invalid label in the spec are the executor's problem, shown
in its status, not any process's.
"""

from __future__ import annotations

from ..colonies import Process
from ..core.conditions import JOBS, Problem, kube_refusal_hint, kube_refusal_reason
from ..core.config import ExecutorConfig
from ..core.jobs import build_job
from ..core.plan import probe_plan
from ..kube.api import KubeApi, KubeError


def jobs_refused_problem(err: KubeError, namespace: str) -> Problem:
    """The executor's condition when Kubernetes refuses its Jobs (`err`) in `namespace`."""
    return Problem(JOBS, kube_refusal_reason(err.status), f"Kubernetes refuses this executor's Jobs in namespace "
                   f"{namespace}: {err}; {kube_refusal_hint(err.status, namespace)}")


async def dry_run_job(kube: KubeApi, config: ExecutorConfig, executor_id: str) -> KubeError | None:
    """None when Kubernetes accepts a Job of this executor, else its error (a transient one: the API server is
    busy or away, and the real creation will say). Raises Problem when the spec makes every Job invalid."""
    probe = Process.from_dict({"processid": "0" * 64, "spec": {"funcname": config.functions[0], "kwargs": {
        "docker-image": "busybox:1.35", "cmd": "true"}, "conditions": {"nodes": 1, "processespernode": 1}}})
    try:
        job = build_job(probe, probe_plan(config), config, executor_id)
        await kube.create_job(job, dry_run=True)
    except KubeError as err:
        return err
    except Exception as err:  # an InvalidProcess here means the spec makes every Job invalid
        raise Problem(JOBS, "InvalidJobSpec", f"the spec cannot make a valid Job: {err}") from None
    return None
