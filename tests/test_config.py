"""A wrong configuration fails before anything runs, naming the file, the source and the field."""

import pytest
from handmade import REPO_CONFIG, write_config

from pipelines.cli import main
from pipelines.config import ConfigError, load_config, preflight


def test_repo_config_matches_the_committed_sample():
    preflight(load_config(REPO_CONFIG))


def test_column_missing_from_the_export_is_named_before_the_run(workdir, capsys):
    def edit(data):
        data["sources"]["erp_orders"]["columns"]["amount"] = "金额(元)"

    path = write_config(workdir, edit)
    with pytest.raises(ConfigError) as err:
        preflight(load_config(path))
    message = str(err.value)
    assert "orders_01.xlsx lacks mapped column(s) '金额(元)' (field amount)" in message
    assert "columns in the file the mapping does not know: ['金额']" in message
    # The command line stops before any asset runs, with exit code 2 and nothing built.
    assert main(["--config", str(path), "build"]) == 2
    assert "金额(元)" in capsys.readouterr().err
    assert not (workdir / "warehouse" / "profiles.duckdb").exists()


def test_unknown_field_and_unmapped_required_field(tmp_path):
    def unknown(data):
        data["sources"]["crm_customers"]["columns"]["nickname"] = "昵称"

    with pytest.raises(ConfigError, match=r"crm_customers: unknown field\(s\) \['nickname'\]"):
        load_config(write_config(tmp_path / "a", unknown))

    def unmapped(data):
        del data["sources"]["erp_orders"]["columns"]["order_no"]

    with pytest.raises(ConfigError, match=r"erp_orders: required field\(s\) \['order_no'\] are not mapped"):
        load_config(write_config(tmp_path / "b", unmapped))


def test_typo_in_a_setting_is_named(tmp_path):
    def typo(data):
        data["sources"]["erp_orders"]["header_rows"] = 2

    with pytest.raises(ConfigError, match=r"sources → erp_orders → header_rows: Extra inputs"):
        load_config(write_config(tmp_path, typo))


def test_an_optional_column_may_be_absent_from_an_export(workdir):
    def optional(data):
        data["sources"]["crm_customers"]["columns"]["marketing_consent"] = {
            "column": "营销同意", "optional": True}

    preflight(load_config(write_config(workdir / "a", optional)))  # no error

    def required(data):
        data["sources"]["crm_customers"]["columns"]["marketing_consent"] = "营销同意"

    with pytest.raises(ConfigError, match="lacks mapped column"):
        preflight(load_config(write_config(workdir / "b", required)))


def test_snapshot_date_from_the_environment_wins_over_the_config(tmp_path, monkeypatch):
    import datetime as dt

    def pinned(data):
        data["snapshot_date"] = "2026-01-31"

    cfg = load_config(write_config(tmp_path, pinned))
    monkeypatch.delenv("PROFILES_SNAPSHOT_DATE", raising=False)
    assert cfg.resolved_snapshot_date() == dt.date(2026, 1, 31)
    monkeypatch.setenv("PROFILES_SNAPSHOT_DATE", "2026-02-01")  # a backfill of one day
    assert cfg.resolved_snapshot_date() == dt.date(2026, 2, 1)
