"""Ray tasks of the select phase: every task reports the node it ran on, so select_stats.json can show that a
cluster was used, and waits come with a progress bar. Tasks read and write the run directory themselves (a shared
filesystem on a cluster); what travels back to the caller is small: counts, summaries, edges."""

from collections.abc import Callable, Iterable
from typing import Any

import ray
from tqdm import tqdm


def _with_node(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    return fn(*args, **kwargs), ray.get_runtime_context().get_node_id()


class SelectTask:
    """`fn` as a Ray task: `.remote(*args)` returns a ref to (fn's result, node id)."""

    def __init__(self, fn: Callable, **options: Any) -> None:
        self.fn = fn
        options = {"num_cpus": 1, "name": fn.__name__, **options}  # the name shows in the dashboard and state API
        self.remote_fn = ray.remote(_with_node).options(**options)

    def remote(self, *args: Any, **kwargs: Any) -> ray.ObjectRef:
        return self.remote_fn.remote(self.fn, *args, **kwargs)


def select_task(fn: Callable, **options: Any) -> SelectTask:
    return SelectTask(fn, **options)


def run_tasks(
    refs: Iterable[ray.ObjectRef],
    *,
    desc: str,
    nodes: set[str] | None = None,
    progress: bool = True,
    fold: Callable[[Any], None] | None = None,
) -> list:
    """Results of the tasks in submission order (or, with `fold`, each result handed to it as it arrives and not
    kept); the node ids they ran on are added to `nodes`."""
    refs = list(refs)
    position = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="task", disable=None if progress else True) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=min(len(pending), 64), timeout=1.0)
            for ref, (result, node) in zip(ready, ray.get(ready), strict=True):
                if fold is None:
                    results[position[ref]] = result
                else:
                    fold(result)
                if nodes is not None:
                    nodes.add(node)
            bar.update(len(ready))
    return results
