"""Tests of `cxrvqa download` / `download-images` against a PhysioNet look-alike on 127.0.0.1."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_physionet import FakePhysioNet, checksum_lines

from cxrvqa.build.index import load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.errors import DataError
from cxrvqa.synth import SynthConfig, write_questions, write_sources
from cxrvqa.tools.download import (
    CHEST_IMAGENOME,
    MIMIC_CXR_JPG,
    SOURCE_FILES,
    Credentials,
    DownloadError,
    DownloadReport,
    RetryPolicy,
    download_images,
    download_sources,
    image_paths_from_dataset,
    resolve_credentials,
)

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "alice", "pw-Zq8!never-leak-4711"
CREDS = Credentials(USER, PASSWORD)
FAST = RetryPolicy(attempts=3, backoff=0.0, timeout=10.0)
ZIP = str(SOURCE_FILES[1])
GOLD_BOXES = "chest-imagenome/1.0.0/gold_dataset/gold_bbox_coordinate_annotations_1000images.csv"
PATIENTS = "mimiciv/2.2/hosp/patients.csv.gz"
IMAGES = [
    "files/p10/p10000032/s50000001/aaaaaaaa-00000001.jpg",
    "files/p10/p10000032/s50000002/aaaaaaaa-00000002.jpg",
    "files/p11/p11000007/s50000003/bbbbbbbb-00000003.jpg",
]


def _write_tree(tree: Path, relative_paths: list[str]) -> None:
    rng = random.Random(7)
    for number, relative in enumerate(relative_paths):
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Above the client's 64 KiB chunk so that cuts and resumes land mid-file.
        path.write_bytes(rng.randbytes(150_000 + 997 * number))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    served = tmp_path / "server"
    _write_tree(served, [str(f) for f in SOURCE_FILES] + [f"{MIMIC_CXR_JPG}/{p}" for p in IMAGES])
    return served


@pytest.fixture
def server(tree: Path) -> Iterator[FakePhysioNet]:
    users = {USER: PASSWORD, "bob": "bob-password"}
    with FakePhysioNet(tree, users, access={str(CHEST_IMAGENOME): {USER}}) as fake:
        yield fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "client"


def quiet(message: str) -> None:
    """A ``log`` that drops the announcement."""


def fetch(server: FakePhysioNet, root: Path, credentials: Credentials = CREDS, **options: Any) -> DownloadReport:
    options = {"workers": 3, "progress": False, "retry": FAST, "log": quiet, **options}
    return download_sources(root, base_url=server.base_url, credentials=credentials, **options)


def fetch_images(server: FakePhysioNet, root: Path, paths: list[str], **options: Any) -> DownloadReport:
    options = {"workers": 2, "progress": False, "retry": FAST, "log": quiet, **options}
    return download_images(root, paths, base_url=server.base_url, credentials=CREDS, **options)


def local(root: Path, relative: str) -> Path:
    return root / "physionet.org/files" / relative


def assert_same(root: Path, tree: Path, relative: str) -> None:
    assert local(root, relative).read_bytes() == (tree / relative).read_bytes()


def ranges(server: FakePhysioNet, relative: str) -> list[str | None]:
    return [entry.range for entry in server.gets(relative)]


# ---------------------------------------------------------------------------------------------
# download_sources


def test_fetches_exactly_the_build_inputs_and_their_checksum_files(
    server: FakePhysioNet, tree: Path, root: Path
) -> None:
    report = fetch(server, root)

    base = root / "physionet.org/files"
    written = sorted(path.relative_to(base).as_posix() for path in root.rglob("*") if path.is_file())
    projects = ("chest-imagenome/1.0.0", "mimic-cxr-jpg/2.0.0", "mimiciv/2.2")
    sums = [f"{project}/SHA256SUMS.txt" for project in projects]
    assert written == sorted([str(f) for f in SOURCE_FILES] + sums)
    for remote in SOURCE_FILES:
        assert_same(root, tree, str(remote))
    assert report.paths("downloaded") == sorted(f"physionet.org/files/{f}" for f in SOURCE_FILES)
    assert report.total_bytes == sum((tree / str(f)).stat().st_size for f in SOURCE_FILES)
    assert all(entry.user_agent.startswith("Wget/") for entry in server.log)


def test_announces_counts_and_sizes_before_transferring(server: FakePhysioNet, root: Path) -> None:
    messages: list[str] = []
    fetch(server, root, log=messages.append)
    assert messages == ["sources: 8 files, 1.2 MiB; 0 already complete, 8 to fetch (1.2 MiB)"]


def test_second_run_skips_complete_files_and_refetches_a_damaged_one(
    server: FakePhysioNet, tree: Path, root: Path
) -> None:
    fetch(server, root)
    local(root, PATIENTS).write_bytes(b"damaged")
    server.log.clear()

    report = fetch(server, root)

    assert report.paths("downloaded") == [f"physionet.org/files/{PATIENTS}"]
    assert len(report.paths("complete")) == 7
    assert {entry.path for entry in server.log} == {PATIENTS}
    assert_same(root, tree, PATIENTS)


def test_resumes_after_a_cut_connection(server: FakePhysioNet, tree: Path, root: Path) -> None:
    server.cut_once(ZIP, after=70_000)
    fetch(server, root)
    assert ranges(server, ZIP) == [None, "bytes=70000-"]
    assert_same(root, tree, ZIP)
    assert not list(root.rglob("*.part"))


def test_resumes_a_partial_file_left_by_an_earlier_run(server: FakePhysioNet, tree: Path, root: Path) -> None:
    part = local(root, ZIP + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes((tree / ZIP).read_bytes()[:50_000])

    messages: list[str] = []
    fetch(server, root, log=messages.append)

    assert ranges(server, ZIP) == ["bytes=50000-"]
    assert_same(root, tree, ZIP)
    assert not part.exists()
    total = sum((tree / str(f)).stat().st_size for f in SOURCE_FILES)
    assert messages[0].endswith(f"8 to fetch ({(total - 50_000) / 1024 / 1024:.1f} MiB)")


def test_a_bad_partial_file_is_discarded_and_fetched_from_zero(
    server: FakePhysioNet, tree: Path, root: Path
) -> None:
    part = local(root, ZIP + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 40_000)
    fetch(server, root)
    assert ranges(server, ZIP) == ["bytes=40000-", None]
    assert_same(root, tree, ZIP)


def test_a_corrupted_transfer_is_refetched(server: FakePhysioNet, tree: Path, root: Path) -> None:
    server.corrupt_once(GOLD_BOXES)
    fetch(server, root)
    assert ranges(server, GOLD_BOXES) == [None, None]
    assert_same(root, tree, GOLD_BOXES)


def test_a_persistent_checksum_mismatch_fails_and_keeps_nothing(
    server: FakePhysioNet, tree: Path, root: Path
) -> None:
    sums = checksum_lines(tree / "mimiciv/2.2")
    listed = hashlib.sha256((tree / PATIENTS).read_bytes()).hexdigest()
    (tree / "mimiciv/2.2/SHA256SUMS.txt").write_text(sums.replace(listed, "0" * 64))

    with pytest.raises(DownloadError, match=r"mimiciv/2.2/hosp/patients.csv.gz: checksum mismatch twice") as err:
        fetch(server, root)

    assert "\n" not in str(err.value)
    assert not local(root, PATIENTS).exists()
    assert not local(root, PATIENTS + ".part").exists()


def test_transient_server_errors_are_retried(server: FakePhysioNet, tree: Path, root: Path) -> None:
    server.fail_once(PATIENTS, 503)
    fetch(server, root)
    assert [entry.status for entry in server.gets(PATIENTS)] == [503, 200]
    assert_same(root, tree, PATIENTS)


def test_gives_up_on_a_transient_error_after_the_allowed_attempts(server: FakePhysioNet, root: Path) -> None:
    server.fail_once(PATIENTS, 502)
    expected = r"patients.csv.gz: network error talking to 127.0.0.1:\d+: HTTP 502 .*after 1 attempts\)$"
    with pytest.raises(DownloadError, match=expected):
        fetch(server, root, retry=RetryPolicy(attempts=1, backoff=0.0))


def test_wrong_password_is_reported_as_such(server: FakePhysioNet, root: Path) -> None:
    with pytest.raises(DownloadError, match="wrong username or password"):
        fetch(server, root, Credentials(USER, "not-the-password"))
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_missing_access_names_the_project_and_its_sign_dua_url(server: FakePhysioNet, root: Path) -> None:
    with pytest.raises(DownloadError) as error:
        fetch(server, root, Credentials("bob", "bob-password"))
    message = str(error.value)
    assert "HTTP 403" in message and "chest-imagenome/1.0.0 needs" in message
    assert message.endswith("https://physionet.org/sign-dua/chest-imagenome/1.0.0/")


def test_missing_file_names_its_path(server: FakePhysioNet, tree: Path, root: Path) -> None:
    project = tree / "chest-imagenome/1.0.0"
    (project / "SHA256SUMS.txt").write_text(checksum_lines(project))
    (tree / GOLD_BOXES).unlink()
    with pytest.raises(DownloadError, match=rf"not found \(HTTP 404\): the server has no {GOLD_BOXES}$"):
        fetch(server, root)


def test_network_failure_names_what_and_where(root: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/files"
    expected = rf"^{base_url}/mimic-cxr-jpg/2.0.0/SHA256SUMS.txt: network error talking to 127.0.0.1:{port}: "
    with pytest.raises(DownloadError, match=expected):
        download_sources(root, base_url=base_url, credentials=CREDS, progress=False, retry=FAST)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://physionet.org/files", "refusing to send PhysioNet credentials over plain http"),
        ("https://alice:secret@physionet.org/files", "must not contain credentials"),
        ("ftp://127.0.0.1/files", "expected an https:// base URL"),
        # Were internal errors (urllib's ValueError).
        ("http://[::1/files", r"expected an https:// base URL \(Invalid IPv6 URL\)"),
        ("https://physionet.org:99999/files", r"expected an https:// base URL \(Port out of range"),
        # Were taken: the file path went into the query, and a line break split the messages.
        ("https://physionet.org/files?x=1", "without spaces, control characters, a query"),
        ("https://physionet.org/files\r\nX: y", "without spaces, control characters, a query"),
    ],
)
def test_unsafe_base_urls_are_refused_before_any_request(root: Path, base_url: str, expected: str) -> None:
    with pytest.raises(DownloadError, match=expected):
        download_sources(root, base_url=base_url, credentials=CREDS, progress=False)


def test_transfers_overlap_but_never_exceed_the_worker_bound(server: FakePhysioNet, root: Path) -> None:
    # A serial client would leave the barrier waiting for company and break it.
    server.hold_first_gets(3)
    fetch(server, root, workers=3)
    assert not server.gate_broken
    assert server.max_in_flight == 3


def test_one_worker_means_one_request_at_a_time(server: FakePhysioNet, root: Path) -> None:
    fetch(server, root, workers=1)
    assert server.max_in_flight == 1


def test_the_password_is_never_written_or_printed(
    server: FakePhysioNet, tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.cut_once(ZIP, after=70_000)
    server.users["carol"] = PASSWORD  # without access to Chest ImaGenome: a 403
    download_sources(root, base_url=server.base_url, credentials=CREDS, workers=2, retry=FAST)
    errors = []
    for credentials in (Credentials(USER, PASSWORD + "x"), Credentials("carol", PASSWORD)):
        with pytest.raises(DownloadError) as error:
            download_sources(tmp_path / "other", base_url=server.base_url, credentials=credentials, retry=FAST)
        errors.append(str(error.value))
    captured = capsys.readouterr()

    # The password, and the Authorization tokens that carry it, must appear nowhere.
    secrets = [PASSWORD.encode()] + [base64.b64encode(f"{user}:{PASSWORD}".encode()) for user in (USER, "carol")]
    texts = [captured.out, captured.err, *errors, repr(CREDS)]
    assert "sources: 8 files" in captured.err
    assert "HTTP 401" in errors[0] and "HTTP 403" in errors[1]
    assert not [secret for secret in secrets for text in texts if secret.decode() in text]
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not [secret for secret in secrets if secret in data], path


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (PEM certificate, PEM key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_https_verifies_the_server_certificate(
    tree: Path, root: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakePhysioNet(tree, {USER: PASSWORD}, tls=certificate) as server:
        assert server.base_url.startswith("https://")
        with pytest.raises(DownloadError, match=r"TLS certificate of 127\.0\.0\.1:\d+ rejected"):
            fetch(server, root)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        assert len(fetch(server, root).paths("downloaded")) == 8


def test_fake_server_honours_basic_auth_only_for_wget(server: FakePhysioNet) -> None:
    url = f"{server.base_url}/mimiciv/2.2/SHA256SUMS.txt"
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def status(headers: dict[str, str]) -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
                return response.status
        except urllib.error.HTTPError as error:
            error.close()
            return error.code

    assert status({"User-Agent": "curl/8.0", "Authorization": auth}) == 403
    assert status({"User-Agent": "Wget/1.21"}) == 401
    assert status({"User-Agent": "Wget/1.21", "Authorization": auth}) == 200


# ---------------------------------------------------------------------------------------------
# Credentials


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PHYSIONET_USERNAME", raising=False)
    monkeypatch.delenv("PHYSIONET_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", None)
    return tmp_path


def write_netrc(home: Path, text: str) -> None:
    path = home / ".netrc"
    path.write_text(text)
    path.chmod(0o600)


def test_credentials_from_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHYSIONET_USERNAME", "carol")
    monkeypatch.setenv("PHYSIONET_PASSWORD", "env-pw")
    write_netrc(home, "machine physionet.org login carol password netrc-pw\n")
    assert resolve_credentials(None, prompt=False) == Credentials("carol", "env-pw")
    assert resolve_credentials("dave", prompt=False) == Credentials("dave", "env-pw")


def test_credentials_from_netrc(home: Path) -> None:
    write_netrc(home, "machine example.org login x password y\nmachine physionet.org login carol password netrc-pw")
    assert resolve_credentials(None, prompt=False) == Credentials("carol", "netrc-pw")
    assert resolve_credentials("carol", prompt=False) == Credentials("carol", "netrc-pw")


def test_netrc_password_of_another_login_is_not_used(home: Path) -> None:
    write_netrc(home, "machine physionet.org login carol password netrc-pw\n")
    with pytest.raises(DownloadError, match=r"^no PhysioNet password for dave: set PHYSIONET_PASSWORD"):
        resolve_credentials("dave", prompt=False)


def test_missing_username_without_a_terminal(home: Path) -> None:
    with pytest.raises(DownloadError, match="^no PhysioNet username: pass --username or set PHYSIONET_USERNAME$"):
        resolve_credentials(None)


def test_unparsable_netrc_is_reported_without_its_content(home: Path) -> None:
    write_netrc(home, "machine physionet.org login carol password hunter2 stray-secret\n")
    with pytest.raises(DownloadError, match=r"\.netrc: line \d+: cannot use it") as error:
        resolve_credentials("carol", prompt=False)
    assert "hunter2" not in str(error.value) and "stray-secret" not in str(error.value)


def test_password_is_prompted_hidden_in_a_terminal(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed-pw")
    assert resolve_credentials("carol") == Credentials("carol", "typed-pw")
    assert prompts == ["PhysioNet password for carol: "]


# ---------------------------------------------------------------------------------------------
# Images


def write_split(dataset: Path, split: str, image_paths: list[str]) -> None:
    dataset.mkdir(parents=True, exist_ok=True)
    records = [{"split": split, "idx": n, "image_path": path} for n, path in enumerate(image_paths)]
    (dataset / f"{split}.json").write_text(json.dumps(records, indent=4))


def test_image_paths_from_dataset_are_prefixed_deduplicated_and_sorted(tmp_path: Path) -> None:
    bare = [path.removeprefix("files/") for path in IMAGES]
    write_split(tmp_path, "train", [bare[2], bare[0], bare[2]])
    write_split(tmp_path, "valid", [bare[1]])
    write_split(tmp_path, "test", ["p19/p19000001/s59000001/cccccccc-00000009.jpg"])
    assert image_paths_from_dataset(tmp_path, ["train", "valid"]) == IMAGES


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"test.json: not found; run `cxrvqa build` first$"),
        ("{", r"test.json: cannot read it as JSON"),
        ('{"a": 1}', r"test.json: expected a JSON list of records$"),
        ('[{"image_path": "p10/p10000032/s50000001/x.jpg"}, {"idx": 3}]', r"test.json: record 1: expected"),
        ('[{"image_path": "../../../../etc/passwd.jpg"}]', r"test.json: record 0: expected image_path"),
        ('[{"image_path": "p1\u0663/p10000032/s50000001/x.jpg"}]', r"record 0: expected image_path"),
        (os.devnull, r"test.json: is a device, not a file$"),  # a link to /dev/zero never ends
    ],
)
def test_bad_dataset_files_raise_data_errors(tmp_path: Path, content: str | None, expected: str) -> None:
    if content == os.devnull:
        (tmp_path / "test.json").symlink_to(content)
    elif content is not None:
        (tmp_path / "test.json").write_text(content)
    with pytest.raises(DataError, match=expected):
        image_paths_from_dataset(tmp_path, ["test"])


def test_image_dry_run_announces_and_lists_without_transferring(server: FakePhysioNet, root: Path) -> None:
    messages: list[str] = []
    report = fetch_images(server, root, IMAGES + IMAGES[:1], dry_run=True, log=messages.append)
    assert report.paths("planned") == [f"physionet.org/files/{MIMIC_CXR_JPG}/{path}" for path in IMAGES]
    assert messages == ["images: 3 files, 465.7 KiB; 0 already complete, 3 to fetch (465.7 KiB)"]
    assert not any(entry.method == "GET" and entry.path.endswith(".jpg") for entry in server.log)
    assert not list(root.rglob("*.jpg"))


def test_images_are_downloaded_verified_and_skipped_next_time(
    server: FakePhysioNet, tree: Path, root: Path
) -> None:
    server.corrupt_once(f"{MIMIC_CXR_JPG}/{IMAGES[1]}")
    first = fetch_images(server, root, IMAGES)
    second = fetch_images(server, root, IMAGES)

    assert len(first.paths("downloaded")) == 3 and len(second.paths("complete")) == 3
    for path in IMAGES:
        assert_same(root, tree, f"{MIMIC_CXR_JPG}/{path}")


def test_an_image_missing_from_the_checksum_list_is_refused(server: FakePhysioNet, root: Path) -> None:
    missing = "files/p12/p12000001/s50000009/dddddddd-00000009.jpg"
    expected = rf"mimic-cxr-jpg/2.0.0/SHA256SUMS.txt: no checksum listed for {missing}$"
    with pytest.raises(DownloadError, match=expected):
        fetch_images(server, root, [missing])


# ---------------------------------------------------------------------------------------------
# Wrappers and the build on downloaded files


WRAPPERS = ["build_dataset.sh", "download_and_build_dataset.sh", "download_images.sh"]


@pytest.mark.parametrize("script", WRAPPERS)
def test_wrapper_scripts_are_valid_bash(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(REPO / script)], check=False).returncode == 0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic PhysioNet tree as PhysioNet ships it (gz, zip), with its questions and images."""
    root = tmp_path_factory.mktemp("synthetic")
    config = SynthConfig(patients=501, seed=11, scene_graphs="zip", gzip=True)
    write_sources(root, config)
    write_questions(root, load_index(SourceLayout.from_root(root)), config)
    cxr = root / "physionet.org/files" / str(MIMIC_CXR_JPG)
    with gzip.open(cxr / "mimic-cxr-2.0.0-metadata.csv.gz", "rt", newline="") as metadata:
        for row in csv.DictReader(metadata):
            subject = row["subject_id"]
            image = cxr / f"files/p{subject[:2]}/p{subject}/s{row['study_id']}/{row['dicom_id']}.jpg"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(row["dicom_id"].encode())
    return root


def test_build_works_on_what_was_downloaded(synthetic: Path, tmp_path: Path) -> None:
    client = tmp_path / "client"
    dataset = client / "mimiccxrvqa/dataset"
    with FakePhysioNet(synthetic / "physionet.org/files", {USER: PASSWORD}) as server:
        fetch(server, client)
        shutil.copytree(synthetic / "mimiccxrvqa/dataset", dataset)
        # The original README's entry point, run where the download landed.
        built = subprocess.run(
            ["bash", str(REPO / "build_dataset.sh")], cwd=client, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "PYTHON": sys.executable},  # this test's Python, venv or not
        )
        assert built.returncode == 0, built.stderr

        questions = json.loads((dataset / "_test.json").read_text())
        answered = json.loads((dataset / "test.json").read_text())
        assert [r["idx"] for r in answered] == [r["idx"] for r in questions]
        assert all("answer" in record for record in answered)
        paths = image_paths_from_dataset(dataset, ["train", "valid", "test"])
        report = fetch_images(server, client, paths)
    assert paths and len(report.paths("downloaded")) == len(paths)


def test_wrappers_run_the_cxrvqa_commands_from_the_current_directory(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "python"
    stub.write_text(f'#!/bin/sh\nprintf "%s|%s\\n" "$PYTHONPATH" "$*" >> {calls}\n')
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub), "PYTHONPATH": "/elsewhere"}
    for script in WRAPPERS:
        subprocess.run(["bash", str(REPO / script), "--extra"], cwd=tmp_path, env=env, check=True)

    prefix = f"{REPO}:/elsewhere|-m cxrvqa"
    assert calls.read_text().splitlines() == [
        f"{prefix} build --physionet-root . --dataset-dir mimiccxrvqa/dataset --extra",
        f"{prefix} download --root . --extra",
        f"{prefix} build --physionet-root . --dataset-dir mimiccxrvqa/dataset",
        f"{prefix} download-images --root . --dataset-dir mimiccxrvqa/dataset --extra",
    ]


# ---------------------------------------------------------------------------------------------
# hostile servers and local faults (issue 16)


def test_a_server_that_sends_too_much_is_cut_off(server: FakePhysioNet, tree: Path,
                                                 root: Path) -> None:
    server.flood(GOLD_BOXES)
    size = (tree / GOLD_BOXES).stat().st_size
    with pytest.raises(DownloadError, match=f"more than the {size} bytes promised"):
        fetch(server, root)
    part = local(root, GOLD_BOXES + ".part")
    assert not part.exists() or part.stat().st_size <= size


def test_an_html_page_as_checksum_list_is_not_cached(server: FakePhysioNet, root: Path) -> None:
    sums = f"{CHEST_IMAGENOME}/SHA256SUMS.txt"
    server.html_once(sums)
    with pytest.raises(DownloadError, match="not a checksum list") as error:
        fetch(server, root)
    # The URL, not the .part file the failure removed; and what the text looked like.
    assert str(error.value).startswith(f"{server.base_url}/{sums} (as the server sent it): line 1:")
    assert "HTML page" in str(error.value) and ".part" not in str(error.value)
    assert not local(root, sums).exists() and not local(root, sums + ".part").exists()
    fetch(server, root)  # the next run fetches the real list
    assert local(root, sums).read_text().split()[1]


def test_a_cached_checksum_list_that_does_not_parse_is_fetched_again(
        server: FakePhysioNet, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fetch(server, root)
    sums = local(root, f"{CHEST_IMAGENOME}/SHA256SUMS.txt")
    sums.write_bytes(b"\xff\xfe<html>")
    fetch(server, root, log=print)
    assert sums.read_text().split()[1]


def test_a_root_that_is_a_file_fails_at_once(server: FakePhysioNet, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match=str(blocker)):
        fetch(server, blocker, retry=RetryPolicy(attempts=5, backoff=5.0))
    assert len(server.log) <= 1  # not retried as a network error


def test_the_overall_timeout_stops_the_run(server: FakePhysioNet, root: Path) -> None:
    with pytest.raises(DownloadError, match="overall --timeout"):
        fetch(server, root, retry=RetryPolicy(attempts=3, backoff=0.0, timeout=10.0,
                                              overall=1e-9))


def _raw_server(respond: Callable[[socket.socket], None]) -> tuple[str, threading.Event]:
    """A loopback server that runs ``respond`` on each connection; set the event to stop it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=respond, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/files", stop


def _silent(conn: socket.socket) -> None:
    with conn:  # accepts, reads the request, never answers
        conn.recv(65536)
        time.sleep(5)


def _trickle(conn: socket.socket) -> None:
    with conn:  # a valid answer, 64 KiB every 0.2 s: never idle long enough to time out
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
            for _ in range(150):
                conn.sendall(b"x" * 65536)
                time.sleep(0.2)
        except OSError:
            pass


def test_a_server_that_never_answers_is_cut_off_by_the_socket_timeout(root: Path) -> None:
    base_url, stop = _raw_server(_silent)
    started = time.monotonic()
    try:
        with pytest.raises(DownloadError, match=r"SHA256SUMS\.txt: network error .*timed out"):
            download_sources(root, base_url=base_url, credentials=CREDS, progress=False,
                             retry=RetryPolicy(attempts=1, backoff=0.0, timeout=0.5))
    finally:
        stop.set()
    assert time.monotonic() - started < 4


def test_a_trickling_transfer_stops_at_the_per_file_limit(root: Path) -> None:
    base_url, stop = _raw_server(_trickle)
    started = time.monotonic()
    try:
        with pytest.raises(DownloadError, match=r"SHA256SUMS\.txt: not complete after the "
                                                r"per-file limit of 0\.5 s \(\d+ bytes so far"):
            download_sources(root, base_url=base_url, credentials=CREDS, progress=False,
                             retry=RetryPolicy(attempts=3, backoff=0.0, timeout=2.0, per_file=0.5,
                                               max_backoff=0.0))
    finally:
        stop.set()
    assert time.monotonic() - started < 4


def test_a_checksum_list_that_is_not_utf8_is_placed_by_line_and_column(tmp_path: Path) -> None:
    # Before: "not UTF-8 text at byte 70", counted from the file's start.
    from cxrvqa.tools.download import _parse_checksums

    part = tmp_path / "SHA256SUMS.txt.part"
    part.write_bytes(b"0" * 64 + b"  a.txt\n" + b"0" * 64 + b"  \xff.txt\n")
    with pytest.raises(DownloadError) as error:
        _parse_checksums(part, "https://example.org/SHA256SUMS.txt")
    assert str(error.value) == ("https://example.org/SHA256SUMS.txt:2:67: byte 0xff is not UTF-8; "
                                "expected UTF-8 text: not a checksum list; removed")
    assert not part.exists()
