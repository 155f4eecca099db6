"""Errors, ids, config loading and the public surface."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import metisnet
from metisnet import errors
from metisnet.config import config_from_mapping, load_config


def test_public_surface_is_curated() -> None:
    assert set(metisnet.__all__) == {"MetisError", "__version__"}
    assert metisnet.MetisError is errors.MetisError


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MetisError), name


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ValidationError, ValueError),
        (errors.ShapeError, TypeError),
        (errors.PeerTimeout, TimeoutError),
        (errors.NetworkError, ConnectionError),
        (errors.PolicyViolation, PermissionError),
        (errors.DependencyMissing, ImportError),
        (errors.ConfigError, ValueError),
    ],
)
def test_errors_are_builtin_compatible(cls: type, builtin: type) -> None:
    assert issubclass(cls, builtin)


def test_cheating_detected_carries_suspects_and_evidence() -> None:
    exc = errors.CheatingDetected("mac check failed", suspects=(2,), evidence=b"\x01")
    assert exc.suspects == (2,) and exc.evidence == b"\x01"
    assert isinstance(exc, errors.ProtocolError)


def test_dependency_missing_names_the_extra() -> None:
    exc = errors.DependencyMissing("tenseal", "he")
    assert "metisnet[he]" in str(exc)


@dataclasses.dataclass(frozen=True)
class _Cfg:
    name: str
    port: int = 0
    tls: bool = True
    data_dir: Path = Path("data")
    peers: tuple[str, ...] = ()
    ratio: float = 0.5


def test_config_from_toml_with_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg_file = tmp_path / "node.toml"
    cfg_file.write_text('[node]\nname = "d1"\nport = 9000\npeers = ["a", "b"]\nratio = 1\n')
    monkeypatch.setenv("METIS_PORT", "9100")
    monkeypatch.setenv("METIS_TLS", "false")
    cfg = load_config(_Cfg, cfg_file, table="node")
    assert cfg == _Cfg(name="d1", port=9100, tls=False, peers=("a", "b"), ratio=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "prot": 1}, "unknown config key"),
        ({"name": "x", "port": "eighty"}, "must be of type int"),
        ({"name": "x", "tls": "maybe"}, "must be a boolean"),
        ({"port": 1}, "_Cfg"),
    ],
)
def test_config_errors_are_clear(data: dict[str, object], message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        config_from_mapping(_Cfg, data)


def test_missing_and_malformed_config_files(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="not found"):
        load_config(_Cfg, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(errors.ConfigError, match="not valid TOML"):
        load_config(_Cfg, bad)
