"""Each person's taste profiles (studio/core/profiles.py), and whose a request reads (profile_owner)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from studio.core.errors import InvalidRequest
from studio.core.profiles import MAX_PROFILES, Profiles
from studio.core.settings import Settings
from studio.ui.context import Studio

RED, BLUE = Image.new("RGB", (32, 32), (200, 40, 40)), Image.new("RGB", (32, 32), (40, 40, 200))


def test_a_profile_is_found_by_its_owner_only_and_another_owners_code_reads_as_none(tmp_path):
    profiles = Profiles(tmp_path)
    ann = profiles.create("user:ann", "Warm")
    profiles.rate("user:ann", ann.code, RED, BLUE)
    assert profiles.get("user:ann", ann.code).rated == 1
    with pytest.raises(InvalidRequest, match=f"You have no profile '{ann.code}'"):
        profiles.get("user:bo", ann.code)
    with pytest.raises(InvalidRequest, match="You have no profile"):
        profiles.rate("user:bo", ann.code, BLUE, RED)
    with pytest.raises(InvalidRequest, match="You have no profile '../ann'"):
        profiles.get("user:bo", "../ann")
    assert profiles.all("user:bo") == [] and profiles.get("user:ann", ann.code).rated == 1
    assert not any("ann" in path.name for path in tmp_path.rglob("*")), "folders name nobody"


def test_steering_turns_on_and_off_and_follows_a_deleted_profile(tmp_path):
    profiles = Profiles(tmp_path)
    first, second = profiles.create("local"), profiles.create("local", "Second")
    assert profiles.active("local") is None and first.name == "Profile 1"
    profiles.set_active("local", second.code)
    assert profiles.active("local").code == second.code
    profiles.delete("local", first.code)
    assert profiles.active("local").code == second.code, "deleting another keeps it on"
    profiles.delete("local", second.code)
    assert profiles.active("local") is None and profiles.all("local") == []


def test_an_exported_profile_imports_for_another_person_under_a_code_of_their_own_when_taken(tmp_path):
    profiles = Profiles(tmp_path)
    ann = profiles.rate("user:ann", profiles.create("user:ann").code, RED, BLUE)
    data = profiles.exported("user:ann", ann.code).read_bytes()
    assert len(data) < 4096
    bo = profiles.imported("user:bo", data)
    assert bo.code == ann.code and bo.rated == 1
    again = profiles.imported("user:bo", data)
    assert again.code != ann.code and again.rated == 1
    with pytest.raises(InvalidRequest, match="not a studio profile"):
        profiles.imported("user:bo", b"{}")


def test_a_person_keeps_a_bounded_number_of_profiles(tmp_path):
    profiles = Profiles(tmp_path)
    for _ in range(MAX_PROFILES):
        profiles.create("local")
    with pytest.raises(InvalidRequest, match=f"You have {MAX_PROFILES} profiles"):
        profiles.create("local")


class Asker:
    def __init__(self, username=None, session_hash="s1", cookie=""):
        self.username, self.session_hash, self.headers = username, session_hash, {"cookie": cookie}


BROWSER = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("settings", "asker", "owner"),
    [
        ({}, Asker(), "local"),  # this machine alone: its one user
        ({"auth": (("ann", "pw"),)}, Asker("ann", cookie=f"studio-browser={BROWSER}"), "user:ann"),
        ({"share": True}, Asker(cookie=f"a=1; studio-browser={BROWSER}"), f"browser:{BROWSER}"),
        ({"share": True}, Asker(cookie="studio-browser=../../x"), "session:s1"),  # not an id: the session
        ({"host": "0.0.0.0"}, Asker(session_hash="s2"), "session:s2"),  # an API client: its session
    ],
)
def test_profiles_belong_to_the_signed_in_user_else_the_browser_else_the_session(settings, asker, owner):
    studio = SimpleNamespace(settings=Settings(**settings))
    assert Studio.profile_owner(studio, asker) == owner
