"""The flake, checked without Nix's network: every .nix file parses, and the
outputs evaluated against the stand-in nixpkgs (tests/nix/stub-nixpkgs.nix,
which offers only attributes checked to exist in nixpkgs) are wired as the
README says, with images that match their Dockerfiles."""
import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.nix.dockerfile import final_stage_config

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ["aarch64-linux", "x86_64-linux"]
# Debian's Nix warns about the build users group it has no use for here.
NIX_ENV = {**os.environ, "NIX_CONFIG": "build-users-group ="}


def nix_files():
    return sorted([ROOT / "flake.nix", *ROOT.glob("nix/*.nix"), *ROOT.glob("tests/nix/*.nix")])


@pytest.fixture(scope="session")
def nix_instantiate():
    path = shutil.which("nix-instantiate")
    if path is None:
        if os.environ.get("NEXUS_REQUIRE_ALL"):
            pytest.fail("nix-instantiate is not installed (.ci/setup-docker.sh installs nix-bin)")
        pytest.skip("nix-instantiate is not installed")
    return path


@functools.lru_cache(maxsize=1)
def _evaluate(nix_instantiate):
    result = subprocess.run(
        [nix_instantiate, "--eval", "--strict", "--json", str(ROOT / "tests/nix/eval-flake.nix")],
        capture_output=True, text=True, env=NIX_ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def flake(nix_instantiate):
    """The flake's outputs, reduced to data by tests/nix/eval-flake.nix."""
    return _evaluate(nix_instantiate)


@pytest.mark.parametrize("path", nix_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nix_file_parses(nix_instantiate, path):
    result = subprocess.run([nix_instantiate, "--parse", str(path)], capture_output=True,
                            text=True, env=NIX_ENV, timeout=60)
    assert result.returncode == 0, result.stderr


def test_flake_offers_the_documented_outputs_on_both_systems(flake):
    assert flake["systems"] == SYSTEMS
    for system in SYSTEMS:
        outputs = flake[system]
        assert outputs["packages"] == ["dashboard-image", "default", "proxy-image"]
        assert sorted(outputs["apps"]) == ["dashboard", "proxy"]
        for name, app in outputs["apps"].items():
            assert app["type"] == "app"
            assert app["program"].endswith(f"/bin/nexus-{name}")
        assert outputs["devShells"] == ["default"]
        assert outputs["checks"] == ["tests"]
        assert outputs["formatter"] == "nixfmt"


def test_check_runs_the_suite_on_sqlite_without_outside_parts(flake):
    script = flake["x86_64-linux"]["checkScript"]
    assert "python -m pytest" in script
    assert '-m "not docker and not browser"' in script
    assert '-k "not postgresql"' in script


def test_package_is_the_whole_distribution(flake):
    package = flake["x86_64-linux"]["default"]
    assert package["pname"] == "claude-nexus"
    assert package["pythonImportsCheck"] == ["common", "proxy", "dashboard"]
    assert package["postInstall"] == ""
    assert package["doCheck"] is False  # the suite runs once, as the flake's check
    assert {"peewee", "gevent", "flask", "psycopg2", "backports-zstd",
            "opentelemetry-sdk"} <= set(package["dependencies"])
    # lib.fileset.toSource's root is the checkout, so the wheel finds pyproject.toml.
    assert package["root"] == str(ROOT)
    assert [Path(f).name for f in package["files"]] == [
        "pyproject.toml", "common", "proxy", "dashboard"]


def test_each_image_env_holds_only_what_its_service_imports(flake):
    (proxy,) = flake["envs"]["proxy"]
    (dashboard,) = flake["envs"]["dashboard"]
    assert [Path(f).name for f in proxy["files"]] == ["pyproject.toml", "common", "proxy"]
    assert [Path(f).name for f in dashboard["files"]] == ["pyproject.toml", "common", "dashboard"]
    assert "flask" not in proxy["dependencies"]
    assert not {"gevent", "packaging"} & set(dashboard["dependencies"])
    # psycopg2 from nixpkgs, built from source; psycogreen is not in nixpkgs.
    for env in (proxy, dashboard):
        assert "psycopg2" in env["dependencies"]
        assert "psycogreen" not in env["dependencies"]
    assert "rm $out/bin/nexus-proxy" in dashboard["postInstall"]


@pytest.mark.parametrize("service", ["proxy", "dashboard"])
def test_nix_image_matches_its_dockerfile(flake, service):
    nix = flake["x86_64-linux"][f"{service}Image"]["config"]
    docker = final_stage_config((ROOT / "docker" / service / "Dockerfile").read_text())
    assert nix["Cmd"] == docker["Cmd"]
    assert dict(v.split("=", 1) for v in nix["Env"]) == docker["Env"]
    assert set(nix["ExposedPorts"]) == docker["ExposedPorts"]
    assert nix["User"] == docker["User"] == "10001:10001"
    assert nix["WorkingDir"] == docker["WorkingDir"]
    assert nix["Healthcheck"] == docker["Healthcheck"]
    assert nix["Labels"] == docker["Labels"]


@pytest.mark.parametrize("service", ["proxy", "dashboard"])
def test_nix_image_is_reproducible_and_non_root(flake, service):
    image = flake["x86_64-linux"][f"{service}Image"]
    # dockerTools' fixed `created` and file times make two builds identical.
    assert image["created"] is None
    assert image["name"] == f"claude-nexus-{service}"
    assert image["contents"] == ["ca-certificates", "fake-nss"]
    assert image["passwd"]["extraPasswdLines"] == [
        "nexus:x:10001:10001:claude-nexus:/app:/sbin/nologin"]
    assert "chmod 1777 tmp" in image["extraCommands"]
    assert re.search(r"ln -s /nix/store/\S+ opt/venv", image["extraCommands"])
    assert image["fakeRootCommands"].startswith("chown 10001:10001 app/data")
    has_credentials = "app/credentials" in image["fakeRootCommands"]
    assert has_credentials == (service == "proxy")


def test_nixos_module_runs_both_services_hardened(flake):
    module = flake["module"]
    assert module["condition"] is True
    assert module["users"]["claude-nexus"]["isSystemUser"] is True
    for name, port in (("proxy", "3000"), ("dashboard", "3001")):
        unit = module[name]
        assert unit["serviceConfig"]["ExecStart"].endswith(f"/bin/nexus-{name}")
        assert unit["environment"]["PORT"] == port
        assert unit["environment"]["WEB_CONCURRENCY"] == "1"
        assert unit["environment"]["DATABASE_URL"] == "sqlite:////var/lib/claude-nexus/nexus.db"
        hardening = unit["serviceConfig"]
        assert hardening["User"] == "claude-nexus"
        assert hardening["NoNewPrivileges"] is True
        assert hardening["ProtectSystem"] == "strict"
        assert hardening["CapabilityBoundingSet"] == ""
    credentials = module["proxy"]["environment"]["CREDENTIALS_DIR"]
    assert "CREDENTIALS_DIR" not in module["dashboard"]["environment"]
    assert module["dashboard"]["serviceConfig"]["InaccessiblePaths"] == [f"-{credentials}"]
    # Built with the host's nixpkgs, not the flake's pin; also offered as an overlay.
    assert module["packageName"].startswith("python3.13-claude-nexus-")
    assert flake["overlay"] == ["claude-nexus"]


def test_nixos_module_migrates_before_both_services(flake):
    module = flake["module"]
    migrate = module["migrate"]
    assert migrate["serviceConfig"]["Type"] == "oneshot"
    assert migrate["serviceConfig"]["RemainAfterExit"] is True
    assert migrate["serviceConfig"]["ExecStart"].endswith("/bin/nexus migrate")
    assert migrate["serviceConfig"]["User"] == "claude-nexus"
    assert migrate["environment"]["DATABASE_URL"] == module["proxy"]["environment"]["DATABASE_URL"]
    for name in ("proxy", "dashboard"):
        assert "claude-nexus-migrate.service" in module[name]["requires"]
        assert "claude-nexus-migrate.service" in module[name]["after"]
    assert module["postgresql"]["condition"] is False


def test_nixos_module_sets_up_a_local_postgresql_with_peer_auth(flake):
    module = flake["moduleLocalDatabase"]
    postgresql = module["postgresql"]
    assert postgresql["condition"] is True
    assert postgresql["content"]["ensureDatabases"] == ["claude-nexus"]
    assert postgresql["content"]["ensureUsers"] == [
        {"name": "claude-nexus", "ensureDBOwnership": True}]
    # The OS user, over the socket: the role peer authentication lets in.
    url = "postgresql://claude-nexus@/claude-nexus?host=/run/postgresql"
    for unit in (module["migrate"], module["proxy"], module["dashboard"]):
        assert unit["environment"]["DATABASE_URL"] == url
        assert "postgresql.target" in unit["after"]
    assert "postgresql.target" in module["migrate"]["requires"]
    # settings are the environment, typed values rendered as the services read them.
    assert module["proxy"]["environment"]["ENABLE_CLIENT_AUTH"] == "true"
    assert module["dashboard"]["environment"]["NEXUS_RETENTION_DAYS"] == "90"
    assert module["proxy"]["environment"]["WEB_CONCURRENCY"] == "4"


def test_nixos_module_sets_only_options_nixos_has(flake):
    names = flake["nixosOptionNames"]
    module = flake["moduleLocalDatabase"]
    assert set(module["postgresql"]["content"]) <= set(names["postgresql"])
    for user in module["postgresql"]["content"]["ensureUsers"]:
        assert set(user) <= set(names["ensureUser"])
    for unit in (module["migrate"], module["proxy"], module["dashboard"]):
        assert set(unit) <= set(names["unit"])


def _evaluate_copy(nix_instantiate, tmp_path, file, old, new, expression):
    """Evaluate `expression` on a copy of nix/ whose `file` has `old` replaced by `new`."""
    for name in ("pyproject.toml", "common", "proxy", "dashboard"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "nix", tmp_path / "nix")
    path = tmp_path / "nix" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    stub = ROOT / "tests/nix/stub-nixpkgs.nix"
    code = (f"let nixpkgs = import {stub}; lib = nixpkgs.lib; "
            f"pkgs = nixpkgs.legacyPackages.x86_64-linux; nix = {tmp_path}/nix; in {expression}")
    return subprocess.run([nix_instantiate, "--eval", "--strict", "--json", "-E", code],
                          capture_output=True, text=True, env=NIX_ENV, timeout=60)


PACKAGE = "(pkgs.callPackage (nix + \"/package.nix\") { }).args.src.files"
MODULE = ("builtins.deepSeq (import (nix + \"/module.nix\") { inherit lib pkgs; "
          "config.services.claude-nexus = { }; }).options.services.claude-nexus true")


@pytest.mark.parametrize("file, old, new, expression, message", [
    ("package.nix", "pyproject = true;", "pyproject = true;", PACKAGE, None),
    ("source.nix", "root = ../.;", "root = ./.;", PACKAGE, "not under `root`"),
    ("package.nix", "doCheck = false;", "doChek = false;", PACKAGE, "doChek"),
    ("module.nix", 'default = "127.0.0.1";', "default = 127;", MODULE, "not of type str"),
    ("module.nix", "default = false;", "defualt = false;", MODULE, "defualt"),
], ids=["unchanged", "toSource root", "misspelled doCheck", "int default on str",
        "misspelled mkOption argument"])
def test_the_stand_in_refuses_what_nixpkgs_would(nix_instantiate, tmp_path, file, old, new,
                                                expression, message):
    result = _evaluate_copy(nix_instantiate, tmp_path, file, old, new, expression)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message in result.stderr, result.stderr


def test_flake_lock_pins_the_input_branch():
    lock = json.loads((ROOT / "flake.lock").read_text())
    node = lock["nodes"]["nixpkgs"]
    branch = re.search(r'github:NixOS/nixpkgs/([\w.-]+)"', (ROOT / "flake.nix").read_text())[1]
    assert node["original"] == {"owner": "NixOS", "ref": branch, "repo": "nixpkgs",
                                "type": "github"}
    assert re.fullmatch(r"[0-9a-f]{40}", node["locked"]["rev"])
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", node["locked"]["narHash"])
    assert lock["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs"}


def _tested_versions():
    """{name: version} of nix/python-versions.txt (the pinned nixpkgs' versions)."""
    lines = (ROOT / "nix/python-versions.txt").read_text().splitlines()
    return dict(line.split() for line in lines if line.strip() and not line.startswith("#"))


def test_the_tested_versions_cover_every_python_package_the_nix_files_use():
    tested = _tested_versions()
    used = set()
    for name in ("package.nix", "checks.nix", "devshell.nix"):
        used |= set(re.findall(r"\b(?:py|ps)\.([\w-]+)", (ROOT / "nix" / name).read_text()))
    used -= {"buildPythonPackage", "setuptools", "pythonOlder"}  # the build, not what runs
    # nixpkgs builds psycopg2 from source; its wheel of the same version stands in.
    names = {"psycopg2-binary" if n == "psycopg2" else n for n in used}
    assert names <= set(tested), names - set(tested)
    assert re.fullmatch(r"3\.\d+", tested["python"])


def test_pyproject_floors_are_the_tested_versions():
    from packaging.requirements import Requirement
    from packaging.version import Version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tested = _tested_versions()
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values()
                     for r in extra]
    checked = set()
    for requirement in requirements:
        name = requirement.name.lower()
        if name not in tested:
            continue
        floor = Version(next(s.version for s in requirement.specifier if s.operator == ">="))
        version = Version(tested[name])
        assert floor <= version and floor.release[:2] == version.release[:2], (name, floor)
        checked.add(name)
    assert {"gunicorn", "gevent", "flask", "peewee", "anthropic"} <= checked
