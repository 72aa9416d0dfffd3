//! The signing keys Kelvin writes are standard PKCS#8 that operators' tools read, and Kelvin
//! reads the keys those tools write.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests build the timestamps a server checks from the wall clock (clippy.toml)

use std::path::{Path, PathBuf};
use std::process::Command;

use kelvin_auth::{Claims, Role, SigningKey, TenantsClaim, Verifier, generate_ed25519_pem};

/// The Python of the test venv (`cargo xtask test` installs `cryptography` in it).
fn python() -> PathBuf {
    PathBuf::from(std::env::var("KELVIN_TEST_PYTHON").expect(
        "KELVIN_TEST_PYTHON is not set: run the suite with `cargo xtask test`, which installs the Python tools",
    ))
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn claims() -> Claims {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Claims {
        sub: "operator".into(),
        iss: "kelvin".into(),
        aud: "kelvin".into(),
        exp: now + 600,
        iat: now,
        jti: Some("key-1".into()),
        org: "*".into(),
        tenants: TenantsClaim::All,
        role: Role::Admin,
    }
}

/// The raw Ed25519 public key OpenSSL derives from the private key file, base64url.
fn openssl_public_key(path: &Path) -> Vec<u8> {
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(der.status.success(), "{}", String::from_utf8_lossy(&der.stderr));
    // SubjectPublicKeyInfo of Ed25519: 12 bytes of header, then the 32-byte key.
    der.stdout[der.stdout.len() - 32..].to_vec()
}

#[test]
fn a_generated_key_is_read_by_openssl_and_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing-key.pem");
    let pem = generate_ed25519_pem().unwrap();
    std::fs::write(&path, &pem).unwrap();

    run(Command::new("openssl").args(["pkey", "-noout", "-in"]).arg(&path));
    let public = run(Command::new(python()).arg("-c").arg(
        "import sys, base64\n\
         from cryptography.hazmat.primitives.serialization import load_pem_private_key, Encoding, PublicFormat\n\
         from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n\
         key = load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n\
         assert isinstance(key, Ed25519PrivateKey), type(key)\n\
         print(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex())\n",
    )
    .arg(&path));
    // All three read the same key.
    let dalek = {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().verifying_key().to_bytes()
    };
    let hex: String = dalek.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(public.trim(), hex);
    assert_eq!(openssl_public_key(&path), dalek);
}

#[tokio::test]
async fn a_key_from_openssl_genpkey_signs_kelvin_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing-key.pem");
    run(Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&path));
    let key = SigningKey::ed25519_from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let token = key.sign(&claims()).unwrap();
    let verified = Verifier::new("kelvin", "kelvin").with_key(&key).verify(&token).await.unwrap();
    assert!(verified.principal.is_platform());
    // The kid names the public key OpenSSL sees: the same file always gives the same kid.
    let again = SigningKey::ed25519_from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(key.kid(), again.kid());
    assert!(!openssl_public_key(&path).is_empty());
}

#[test]
fn derived_secrets_depend_on_the_key_and_the_label() {
    let a = SigningKey::ed25519_from_pem(&generate_ed25519_pem().unwrap()).unwrap();
    let b = SigningKey::ed25519_from_pem(&generate_ed25519_pem().unwrap()).unwrap();
    assert_eq!(a.derive_secret("audit"), a.derive_secret("audit"));
    assert_ne!(a.derive_secret("audit"), a.derive_secret("other"));
    assert_ne!(a.derive_secret("audit"), b.derive_secret("audit"));
    let h = SigningKey::hs256(&[7u8; 32]).unwrap();
    assert_ne!(h.derive_secret("audit"), [0u8; 32]);
}
