//! TLS material made with the `openssl` CLI (ECDSA P-256) in a temp dir:
//! a CA, a leaf for `localhost`/`127.0.0.1` signed by it, an expired leaf
//! (2020-01-01..2020-02-01, same names), a leaf for the wrong name
//! (`wrong.example.invalid`), and a self-signed leaf for `localhost`/
//! `127.0.0.1`. Key files are PEM PKCS#8, unencrypted, mode 0644 (servers
//! that run as other users must be able to read them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

use super::process::{at_exit, run};
use super::{require_binary, shared_instance, tempdir};

/// A certificate and its key. `chain` is the certificate followed by the
/// CA certificate (equal to `cert` for self-signed ones and the CA).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: PathBuf,
}

pub struct Certs {
    /// The test CA (`CN=healthprobe test CA`).
    pub ca: KeyPair,
    /// Valid for DNS:localhost and IP:127.0.0.1, signed by `ca`.
    pub leaf: KeyPair,
    /// Same names, signed by `ca`, expired on 2020-02-01.
    pub expired: KeyPair,
    /// Valid, signed by `ca`, but only for DNS:wrong.example.invalid.
    pub wrong_name: KeyPair,
    /// Valid for DNS:localhost and IP:127.0.0.1 but self-signed.
    pub self_signed: KeyPair,
    dir: TempDir,
}

const CA_CNF: &str = "\
[ca]
default_ca = hp
[hp]
database = db/index.txt
new_certs_dir = db
serial = db/serial
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
email_in_dn = no
[any]
commonName = supplied
[leaf_good]
subjectAltName = DNS:localhost,IP:127.0.0.1
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
[leaf_wrong]
subjectAltName = DNS:wrong.example.invalid
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
";

impl Certs {
    /// Make a fresh set in a new temp dir.
    pub fn generate() -> Certs {
        let openssl = require_binary("openssl");
        let dir = tempdir("certs");
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::write(d.join("db/index.txt"), "").unwrap();
        std::fs::write(d.join("db/serial"), "1000\n").unwrap();
        std::fs::write(d.join("ca.cnf"), CA_CNF).unwrap();
        let ossl = |args: &[&str]| {
            run(
                Command::new(&openssl).args(args).current_dir(d),
                Duration::from_secs(30),
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];

        ossl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "3650",
                    "-subj",
                    "/CN=healthprobe test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        let signed = |name: &str, cn: &str, ext: &str, dates: &[&str]| {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let subj = format!("/CN={cn}");
            ossl(
                &[
                    &["req"][..],
                    &ec,
                    &["-keyout", &key, "-out", &csr, "-subj", &subj],
                ]
                .concat(),
            );
            ossl(
                &[
                    &[
                        "ca",
                        "-batch",
                        "-notext",
                        "-config",
                        "ca.cnf",
                        "-cert",
                        "ca.crt",
                        "-keyfile",
                        "ca.key",
                        "-in",
                        &csr,
                        "-out",
                        &crt,
                        "-extensions",
                        ext,
                    ][..],
                    dates,
                ]
                .concat(),
            );
        };
        signed("leaf", "localhost", "leaf_good", &["-days", "825"]);
        signed(
            "expired",
            "localhost",
            "leaf_good",
            &[
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200201000000Z",
            ],
        );
        signed(
            "wrong-name",
            "wrong.example.invalid",
            "leaf_wrong",
            &["-days", "825"],
        );
        ossl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "self-signed.key",
                    "-out",
                    "self-signed.crt",
                    "-days",
                    "825",
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                ],
            ]
            .concat(),
        );

        let ca_pem = std::fs::read(d.join("ca.crt")).unwrap();
        let pair = |name: &str, with_ca: bool| {
            let cert = d.join(format!("{name}.crt"));
            let key = d.join(format!("{name}.key"));
            let chain = if with_ca {
                let chain = d.join(format!("{name}.chain.crt"));
                let mut pem = std::fs::read(&cert).unwrap();
                pem.extend_from_slice(&ca_pem);
                std::fs::write(&chain, pem).unwrap();
                chain
            } else {
                cert.clone()
            };
            set_mode(&key, 0o644);
            KeyPair { cert, key, chain }
        };
        set_mode(d, 0o755);
        Certs {
            ca: pair("ca", false),
            leaf: pair("leaf", true),
            expired: pair("expired", true),
            wrong_name: pair("wrong-name", true),
            self_signed: pair("self-signed", false),
            dir,
        }
    }

    /// One set for the whole test binary.
    pub fn shared() -> &'static Certs {
        static SHARED: OnceLock<Result<Certs, String>> = OnceLock::new();
        shared_instance(&SHARED, "certificates", || {
            at_exit(|| {
                if let Some(Ok(certs)) = SHARED.get() {
                    let _ = std::fs::remove_dir_all(certs.dir());
                }
            });
            Certs::generate()
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls client config (ring provider) trusting only the test CA.
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        rustls_client_config_trusting(&[&self.ca.cert])
    }
}

/// A rustls client config (ring provider) trusting only the given PEM files.
pub fn rustls_client_config_trusting(roots_pem: &[&Path]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for path in roots_pem {
        let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots
                .add(cert.expect("PEM certificate"))
                .expect("add root certificate");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
