"""lift3d.fanout: tasks run serially or one Ray task each; a failing task is reported by name, the others go on."""

from __future__ import annotations

import statistics
import sys

import pytest

from lift3d.fanout import RayOptions, RayUnavailableError, import_ray, run_tasks

# statistics.fmean is a Python function every Ray worker imports by name; fmean([]) raises StatisticsError
TASKS = [("two and six", ([2.0, 6.0],)), ("empty", ([],)), ("nine", ([9.0],))]
ERROR = "StatisticsError: fmean requires at least one data point"


def test_serial_outcomes_keep_task_order_and_a_failure_does_not_stop_the_others():
    seen = []
    outcomes = run_tasks(statistics.fmean, TASKS, on_done=lambda o: seen.append(o.name))
    assert [o.name for o in outcomes] == ["two and six", "empty", "nine"]
    assert [o.value for o in outcomes] == [4.0, None, 9.0]
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error == ERROR
    assert "Traceback" in outcomes[1].traceback
    assert seen == ["two and six", "empty", "nine"]  # reported as each finished


def test_stop_on_error_raises_the_tasks_exception():
    seen = []
    with pytest.raises(statistics.StatisticsError, match="at least one data point"):
        run_tasks(statistics.fmean, TASKS, on_done=lambda o: seen.append(o.name), stop_on_error=True)
    assert seen == ["two and six"]  # the third task never ran


def test_duplicate_task_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        run_tasks(statistics.fmean, [("a", ([1.0],)), ("a", ([4.0],))])


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailableError, match=r"pip install 'lift3d\[ray\]'") as err:
        import_ray()
    assert "\n" not in str(err.value)
    with pytest.raises(RayUnavailableError):
        run_tasks(statistics.fmean, TASKS, RayOptions(workers=2))
    assert run_tasks(statistics.fmean, [], RayOptions(workers=2)) == []  # nothing to run: Ray is not needed


def test_ray_gives_the_serial_outcomes():
    ray = pytest.importorskip("ray")
    try:
        outcomes = run_tasks(statistics.fmean, TASKS, RayOptions(workers=2))
        assert ray.cluster_resources()["CPU"] == 2
        assert [o.value for o in outcomes] == [4.0, None, 9.0]
        assert outcomes[1].error == ERROR  # the cause, not Ray's wrapper
        assert "at least one data point" in outcomes[1].traceback
        with pytest.raises(statistics.StatisticsError, match="at least one data point"):
            run_tasks(statistics.fmean, TASKS, RayOptions(workers=2), stop_on_error=True)
    finally:
        ray.shutdown()
