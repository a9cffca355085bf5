"""Unit tests for the fixes the reliability tests led to, each at the place it was made.

* collector/http.py: a 204 is data only where the marketplace documents one, an empty 200 body or
  JSON null never; otherwise the answer is retried, then fails the dataset (the fault matrix
  found an empty /v1/returns/list answer moving the returns watermark past returns never read,
  and an empty stock answer zeroing the stock). Connection errors and 200s say what happened.
* collector/wb/normalize.py: a wb-warehouses row without `quantity` is refused, not read as 0.
* collector/pipeline.py: unreadable data names the endpoint it came from; a database path
  that cannot hold the lock file is a StorageError, not a traceback.
* collector/config.py: `.env` that is not UTF-8, or has a line that is not VARIABLE=value, is
  an error naming the line (never quoting it); typos outside the project's prefixes are pointed
  out when they are in `.env`; a configuration error mentions the typo that likely caused it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from urllib3.exceptions import NewConnectionError, ProtocolError

from collector.config import ConfigError, load_settings, read_env_file, read_environment
from collector.http import ApiClient, RetryableError, TokenBucket, connection_problem
from collector.pipeline import describe_failure, run_lock
from collector.records import BadRecord
from collector.storage import StorageError
from collector.wb import normalize as wb


def client() -> ApiClient:
    return ApiClient(account="wb-1", headers={}, secrets=("s3cret-token",), limits={"x": TokenBucket(0.001, 1)})


def response(status: int, body: bytes, reason: str = "") -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content, answer.reason = status, body, reason
    return answer


@pytest.mark.parametrize("status, body, empty_ok", [(200, b"", False), (200, b"  \n", False), (200, b"null", False),
                                                    (204, b"", False), (200, b"", True), (200, b"null", True)])
def test_an_undocumented_empty_answer_is_a_retryable_failure(status, body, empty_ok):
    with pytest.raises(RetryableError, match="the answer is empty") as caught:
        client()._interpret(response(status, body, "OK" if status == 200 else "No Content"), "POST /v1/x", "x",
                            empty_ok=empty_ok)
    assert caught.value.status == status


def test_a_documented_204_is_none():
    assert client()._interpret(response(204, b""), "POST /x", "x", empty_ok=True) is None


def test_an_empty_list_is_data_not_an_empty_answer():
    assert client()._interpret(response(200, b"[]", "OK"), "GET /x", "x") == []


def test_a_malformed_answer_says_so_with_its_status_and_without_the_secret():
    with pytest.raises(RetryableError) as caught:
        client()._interpret(response(200, b'{"token": "s3cret-token", "items": [', "OK"), "GET /x", "x")
    assert str(caught.value) == ('GET /x: HTTP 200 OK: the answer is not valid JSON (27 characters, '
                                 'starting: {"token": "***", "items": [)')


@pytest.mark.parametrize("error, words", [
    (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))),
     "the connection was reset before the answer came"),
    (requests.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
     "the connection was refused (is the URL right?)"),
    (requests.ConnectionError(NewConnectionError(None, "Failed to establish a new connection")),
     "the connection failed (ConnectionError)"),
])
def test_a_connection_problem_is_worded(error, words):
    assert connection_problem(error) == words


def test_the_client_remembers_the_endpoint_of_its_latest_call():
    api = client()
    api._send = lambda *args: []  # no network
    api.call("GET", "http://127.0.0.1:1/x", limit="x", endpoint="GET /api/v1/supplier/orders")
    assert api.last_endpoint == "GET /api/v1/supplier/orders"


def test_unreadable_data_names_the_endpoint_it_came_from():
    ctx = SimpleNamespace(account=SimpleNamespace(account="wb-1", label="Магазин"),
                          api=SimpleNamespace(last_endpoint="GET /api/v1/supplier/orders"))
    text = describe_failure(ctx, "orders", BadRecord("orders row srid='x': the field 'nmId' is missing"))
    assert text == ("wb-1 (Магазин) orders: unreadable data from the marketplace: orders row srid='x': the field "
                    "'nmId' is missing (GET /api/v1/supplier/orders: HTTP 200 OK, but the data is unreadable)")


def test_a_wb_stock_row_without_its_quantity_is_refused():
    row = {"nmId": 1, "chrtId": 2, "warehouseId": -999999, "warehouseName": "Склад WB",
           "regionName": "Склад WB"}
    with pytest.raises(BadRecord, match="'quantity' is missing"):
        wb.stock_levels([row], "wb-1")
    assert wb.stock_levels([{**row, "quantity": 0}], "wb-1")[0].quantity == 0


def test_a_lock_file_that_cannot_be_made_is_a_storage_error(tmp_path):
    (tmp_path / "data").write_text("a file where the folder should be")
    with pytest.raises(StorageError, match=r"its folder .*data cannot be created"):
        with run_lock(tmp_path / "data" / "mp.db"):
            pass


@pytest.mark.parametrize("content, line, words", [
    (b"WB_API_TOKEN=abc\nWB_NAME_1=\xcc\xe0\xe3\n", 2, "is not UTF-8 text"),
    (b"WB_API_TOKEN abc-secret\n", 1, "is not VARIABLE=value"),
    (b"# comment\n\nWB_API_TOKEN=abc\nWB_NAME_1=\"open\n", 4, "is not VARIABLE=value"),
])
def test_a_bad_env_line_is_named_and_never_quoted(tmp_path, content, line, words):
    env = tmp_path / ".env"
    env.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        read_env_file(env)
    message = str(caught.value)
    assert message.startswith(f"{env}: line {line} {words}")
    said = message.removeprefix(f"{env}: ")  # the path may hold anything (pytest-xdist's "popen-gw1")
    assert "abc" not in said and "open" not in said


def test_the_viewer_reads_a_bad_env_leniently(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"WB_API_TOKEN abc\nTIMEZONE=Asia/Omsk\nWB_NAME_1=\xcc\xe0\xe3\n")
    assert read_environment(env, environ={})["TIMEZONE"] == "Asia/Omsk"


def test_env_as_notepad_saves_it(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfWB_API_TOKEN=abc\r\nWB_NAME_1=\xd0\x9c\r\n")
    assert read_env_file(env) == {"WB_API_TOKEN": "abc", "WB_NAME_1": "М"}


def test_a_configuration_error_mentions_the_typo_behind_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text("OZON_CLIENT_ID_2=12\nOZON_API_KYE_2=k\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env, environ={})
    assert str(caught.value) == ("OZON_CLIENT_ID_2 is set but OZON_API_KEY_2 is missing: set both or neither; note: "
                                 "OZON_API_KYE_2 is not a setting MP Dashboard knows (did you mean OZON_API_KEY_2?)")


def test_typos_in_env_are_pointed_out_whatever_their_prefix(tmp_path):
    env = tmp_path / ".env"
    env.write_text("WB_API_TOKEN=abc\nDATABSE_PATH=/srv/mp.db\nTIMEZNOE=Asia/Omsk\nEDITOR=vim\n")
    settings = load_settings(env, environ={"DATABSE_URL": "not ours: the environment, not .env"})
    assert settings.warnings == (
        "DATABSE_PATH is not a setting MP Dashboard knows (did you mean DATABASE_PATH?)",
        "TIMEZNOE is not a setting MP Dashboard knows (did you mean TIMEZONE?)",
    )
