"""`/memory` and `/free_memory`, and concurrent API users, against the launched app."""

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_memory_lists_what_is_loaded_and_free_memory_drops_it(client, running_app):
    client.predict(prompt="a kettle", steps=2, api_name="/txt2img")
    report = client.predict(api_name="/memory")
    model = next(m for m in report["models"] if m["name"].endswith("tiny-sd"))
    assert model["where"] == "cpu" and model["bytes"] > 0 and model["in_use"] is False
    assert report["used_bytes"]["cpu"] >= model["bytes"]
    assert report["budget_bytes"]["ram"] > 0
    assert (report["offload"], report["last_offload"]) == ("auto", "none"), "a CPU has nothing to offload to"

    after = client.predict(api_name="/free_memory")
    assert after["models"] == [] and after["used_bytes"]["cpu"] == 0
    images, _ = client.predict(prompt="a kettle", steps=2, api_name="/txt2img")
    assert len(images) == 1, "the next run loads the model again and works"


def test_two_users_at_once_get_their_own_results(client, running_app):
    other = Client(running_app.url, verbose=False)  # a second visitor, with a session of its own
    jobs = {
        seed: user.submit(prompt=f"user {seed}", seed=seed, steps=3, num_images=2, api_name="/txt2img")
        for seed, user in ((101, client), (202, other))
    }
    results = {seed: job.result(timeout=180) for seed, job in jobs.items()}
    for seed, (images, params) in results.items():
        assert [p["seed"] for p in params] == [seed, seed + 1]
        assert all(p["user_prompt"] == f"user {seed}" for p in params)
        alone, _ = client.predict(
            prompt=f"user {seed}", seed=seed, steps=3, num_images=2, api_name="/txt2img"
        )
        for made, expected in zip(images, alone, strict=True):
            assert np.array_equal(pixels(made["image"]), pixels(expected["image"]))
