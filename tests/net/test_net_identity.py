"""Node identities, keystores, certificates, trust stores and ``metis keys``."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account

from metisnet.cli import main
from metisnet.errors import ConfigError, DecryptionError, IntegrityError
from metisnet.net.identity import (
    BINDING_OID,
    NodeKey,
    TlsIdentity,
    cert_hash,
    create_node_files,
    load_keystore,
    load_node_identity,
    new_node_identity,
    resolve_password,
    save_keystore,
    verify_certificate,
)
from metisnet.net.trust import FileTrustStore, MemoryTrustStore, TrustStore, parse_address

FAST_SCRYPT = 1 << 10


def test_node_id_is_the_checksummed_ethereum_address() -> None:
    key = NodeKey.generate()
    assert key.node_id == Account.from_key(key.secret_bytes()).address
    assert "secret hidden" in repr(key) and key.secret_bytes().hex() not in repr(key)


def test_keystore_round_trip_and_wrong_password(tmp_path) -> None:
    key = NodeKey.generate()
    path = tmp_path / "node.json"
    save_keystore(key, path, "correct horse", scrypt_n=FAST_SCRYPT)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["crypto"]["kdf"] == "scrypt"
    assert load_keystore(path, "correct horse").node_id == key.node_id
    with pytest.raises(DecryptionError):
        load_keystore(path, "wrong")
    with pytest.raises(ConfigError):
        load_keystore(tmp_path / "missing.json", "x")


def test_password_from_argument_or_environment(monkeypatch) -> None:
    monkeypatch.setenv("METIS_KEY_PASSWORD", "from-env")
    assert resolve_password(None) == "from-env"
    assert resolve_password("given") == "given"
    monkeypatch.delenv("METIS_KEY_PASSWORD")
    with pytest.raises(ConfigError, match="METIS_KEY_PASSWORD"):
        resolve_password(None)


def test_certificate_binds_the_tls_key_to_the_node_key() -> None:
    ident = new_node_identity()
    cert = x509.load_der_x509_certificate(ident.tls.cert_der)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == ident.node_id
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert verify_certificate(ident.tls.cert_der) == ident.node_id
    assert ident.cert_hash == cert_hash(ident.tls.cert_der) and len(ident.cert_hash) == 32


def _forge(subject_id: str, binding: bytes) -> bytes:
    """A self-signed cert naming ``subject_id`` with a chosen binding signature."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject_id)])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("metis:node:" + subject_id)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(BINDING_OID, binding), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_certificate_claiming_someone_elses_node_id_is_rejected() -> None:
    victim, attacker = new_node_identity(), new_node_identity()
    # the attacker copies the victim's binding onto its own TLS key: the signature no longer
    # covers the key in the certificate, so it recovers to some other address
    victim_cert = x509.load_der_x509_certificate(victim.tls.cert_der)
    binding = victim_cert.extensions.get_extension_for_oid(BINDING_OID).value.value
    with pytest.raises(IntegrityError):
        verify_certificate(_forge(victim.node_id, binding))
    with pytest.raises(IntegrityError):
        verify_certificate(_forge(victim.node_id, b"\x00" * 65))
    with pytest.raises(IntegrityError):
        verify_certificate(b"not a certificate")
    assert verify_certificate(attacker.tls.cert_der) == attacker.node_id


def test_node_files_are_created_once_and_reload_identically(tmp_path) -> None:
    path = tmp_path / "node.keystore"
    ident = create_node_files(path, "pw", scrypt_n=FAST_SCRYPT)
    assert (tmp_path / "node.keystore.tls").exists()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        create_node_files(path, "pw", scrypt_n=FAST_SCRYPT)
    again = load_node_identity(path, "pw")
    assert again.node_id == ident.node_id and again.cert_hash == ident.cert_hash
    assert b"PRIVATE KEY" in (tmp_path / "node.keystore.tls").read_bytes()
    assert b"ENCRYPTED" in (tmp_path / "node.keystore.tls").read_bytes()
    with pytest.raises(DecryptionError):
        TlsIdentity.load(tmp_path / "node.keystore.tls", "wrong")


def test_trust_stores(tmp_path) -> None:
    a, b = new_node_identity(), new_node_identity()
    path = tmp_path / "trust.json"
    FileTrustStore.write(path, {a.node_id: (a.cert_hash, None),
                                b.node_id: (b.cert_hash, "127.0.0.1:7001")})
    store = FileTrustStore(path)
    assert isinstance(store, TrustStore)
    assert store.pinned_hash(a.node_id) == a.cert_hash
    assert store.address(b.node_id) == ("127.0.0.1", 7001)
    assert store.pinned_hash(new_node_identity().node_id) is None
    path.write_text(json.dumps({a.node_id: a.cert_hash.hex()}) + " ")  # edited: re-read
    assert store.pinned_hash(b.node_id) is None
    for bad in ({"0xnot-an-address": "00" * 32}, {a.node_id: "abcd"}, [1, 2],
                {a.node_id: {"cert_sha256": "00" * 32, "extra": 1}}):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            FileTrustStore(path)
    mem = MemoryTrustStore()
    with pytest.raises(ConfigError):
        mem.pin(a.node_id, b"short")
    assert parse_address("[::1]:80") == ("::1", 80)
    with pytest.raises(ConfigError):
        parse_address("nohost")


def test_cli_keys_new_prints_the_address_never_the_key(tmp_path) -> None:
    out = tmp_path / "node.json"
    runner = CliRunner()
    res = runner.invoke(main, ["keys", "new", "--out", str(out), "--scrypt-n", "1024"],
                        env={"METIS_KEY_PASSWORD": "pw"})
    assert res.exit_code == 0, res.output
    ident = load_node_identity(out, "pw")
    assert ident.node_id in res.output and ident.cert_hash.hex() in res.output
    assert ident.key.secret_bytes().hex() not in res.output
    res = runner.invoke(main, ["keys", "show", str(out), "--password", "pw"])
    assert res.exit_code == 0 and ident.node_id in res.output
    res = runner.invoke(main, ["keys", "new", "--out", str(out), "--password", "pw"])
    assert res.exit_code != 0
