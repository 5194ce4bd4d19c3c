"""How --replicas, --min-replicas and --max-replicas become the Ray Serve deployment's options."""

import pytest

from studio.core.errors import StudioError
from studio.core.settings import Settings
from studio.ui.ray_replicas import replica_options


def test_a_fixed_number_of_replicas_each_taking_one_request_on_one_cpu():
    options = replica_options(Settings(ray="local", replicas=3))
    assert options == {"max_ongoing_requests": 1, "ray_actor_options": {"num_cpus": 1}, "num_replicas": 3}
    assert Settings(ray="local", replicas=3).most_replicas == 3


def test_autoscaling_between_the_fewest_and_the_most_on_waiting_requests():
    settings = Settings(ray="local", min_replicas=0, max_replicas=8)
    assert replica_options(settings)["autoscaling_config"] == {
        "min_replicas": 0, "max_replicas": 8, "target_ongoing_requests": 1,
    }  # fmt: skip
    assert "num_replicas" not in replica_options(settings) and settings.most_replicas == 8
    assert replica_options(Settings(ray="local", max_replicas=4))["autoscaling_config"]["min_replicas"] == 1
    with pytest.raises(StudioError, match=r"--min-replicas \(5\) must be between 0 and --max-replicas \(4\)"):
        replica_options(Settings(ray="local", min_replicas=5, max_replicas=4))
