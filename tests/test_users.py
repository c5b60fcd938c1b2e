"""Login users and roles in the store: ``cactus users``, what each role may do, and who is recorded as the author
of jobs and of the models they register."""

from __future__ import annotations

import pytest

from cactus.cli import main
from db import (
    AccessError,
    add_user,
    allows,
    create_dataset,
    list_users,
    register_model,
    require,
    role_of,
    session_scope,
)
from db.errors import NotFoundError, StoreError
from db.session import dispose_engines
from db.users import ensure_admin, remove_user
from jobs.queue import enqueue, get_job


@pytest.fixture
def url(tmp_path):
    yield f"sqlite:///{tmp_path / 'store.db'}"
    dispose_engines()


def test_each_role_may_do_what_the_ones_below_it_may():
    assert [allows("viewer", need) for need in ("viewer", "annotator", "admin")] == [True, False, False]
    assert [allows("annotator", need) for need in ("viewer", "annotator", "admin")] == [True, True, False]
    assert [allows("admin", need) for need in ("viewer", "annotator", "admin")] == [True, True, True]
    assert not allows(None, "viewer")  # signed in, but not a user of this store
    with pytest.raises(StoreError, match="unknown role 'owner'; the roles are viewer, annotator, admin"):
        allows("admin", "owner")


def test_a_refusal_names_the_role_needed_the_role_held_and_the_fix():
    require("annotator", "annotator", who="ana@example.org", action="Saving corrections")  # allowed: no error
    with pytest.raises(AccessError) as refused:
        require("viewer", "annotator", who="vic@example.org", action="Saving corrections")
    assert str(refused.value) == ("Saving corrections needs the annotator role, and vic@example.org has the viewer "
                                  "role; ask an admin to run `cactus users add vic@example.org --role annotator`")
    with pytest.raises(AccessError, match="has no role in this store"):
        require(None, "viewer", who="stranger@example.org")


def test_users_are_added_changed_listed_and_removed(url):
    with session_scope(url) as session:
        user, created = add_user(session, "  Ana@Example.org ", "annotator")
        assert (user.email, user.role, created) == ("ana@example.org", "annotator", True)
        add_user(session, "boss@example.org", "admin")
        user, created = add_user(session, "ANA@example.org", "viewer")  # the same person: a new role, not a new user
        assert (user.role, created) == ("viewer", False)
    with session_scope(url, readonly=True) as session:
        assert [(u.email, u.role) for u in list_users(session)] == [("boss@example.org", "admin"),
                                                                    ("ana@example.org", "viewer")]
        assert role_of(session, "Ana@example.org") == "viewer"
        assert role_of(session, "nobody@example.org") is None
    with session_scope(url) as session:
        remove_user(session, "ana@example.org")
        with pytest.raises(NotFoundError, match=r"no user 'ana@example\.org'"):
            remove_user(session, "ana@example.org")
        for bad in ("", "two words", "x" * 400):
            with pytest.raises(StoreError):
                add_user(session, bad, "viewer")
        with pytest.raises(StoreError, match="unknown role"):
            add_user(session, "eve@example.org", "root")
        assert role_of(session, "ana@example.org") is None


def test_the_admin_setting_makes_an_admin_once(url):
    with session_scope(url) as session:
        add_user(session, "boss@example.org", "viewer")
        assert ensure_admin(session, "boss@example.org") is True
        assert ensure_admin(session, "BOSS@example.org") is False
        assert role_of(session, "boss@example.org") == "admin"


def test_cactus_users_commands(url, capsys):
    assert main(["users", "list", "--db", url]) == 0
    assert "no users yet" in capsys.readouterr().out
    assert main(["users", "add", "Boss@Example.org", "--role", "admin", "--db", url]) == 0
    assert capsys.readouterr().out == "added boss@example.org: admin\n"
    assert main(["users", "add", "ana@example.org", "--role", "annotator", "--db", url]) == 0
    assert main(["users", "add", "ana@example.org", "--role", "viewer", "--db", url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "updated ana@example.org: viewer"
    assert main(["users", "list", "--db", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["boss@example.org", "admin"], ["ana@example.org", "viewer"]]
    assert main(["users", "remove", "ana@example.org", "--db", url]) == 0
    assert capsys.readouterr().out == "removed ana@example.org\n"
    assert main(["users", "remove", "ana@example.org", "--db", url]) == 2
    assert "error: no user 'ana@example.org'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the role must be one of the three
        main(["users", "add", "eve@example.org", "--role", "root", "--db", url])
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_a_model_made_by_a_job_has_the_author_of_the_job(url):
    with session_scope(url) as session:
        dataset = create_dataset(session, "d")
        job = enqueue(session, "label", {"dataset_id": dataset.id}, created_by="ana@example.org")
        model = register_model(session, name="m", checkpoint="/ckpt/m", backbone="tiny-bert", mode="sia",
                               loss="aug_triplet", threshold=0.3, job_id=job.id)
        by_hand = register_model(session, name="n", checkpoint="/ckpt/n", backbone="tiny-bert", mode="sia",
                                 loss="aug_triplet", threshold=0.3, created_by="boss@example.org")
    with session_scope(url, readonly=True) as session:
        assert get_job(session, job.id).created_by == "ana@example.org"
    assert model.created_by == "ana@example.org"
    assert by_hand.created_by == "boss@example.org"
