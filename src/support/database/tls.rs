//! TLS material for the database drivers and TLS failures in words:
//! "certificate verify failed: unknown authority" rather than
//! `InvalidCertificate(UnknownIssuer)`. What is not about the database `tls:`
//! block (crypto provider, system roots, the `verify: false` verifier) comes
//! from [`crate::support::tls`].

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use super::{DbError, TlsSettings};
use crate::checks::Reason;
use crate::support::tls::{accept_any_certificate, client_config_builder, system_roots};

/// The certificates to trust: those of `ca_file`, else the system's.
pub(super) async fn trusted_roots(
    tls: &TlsSettings,
) -> Result<Vec<CertificateDer<'static>>, DbError> {
    match &tls.ca_file {
        Some(path) => load_ca_file(path).await,
        None => {
            let roots = tokio::task::spawn_blocking(|| system_roots().certs.clone())
                .await
                .unwrap_or_default();
            if roots.is_empty() && tls.verify {
                return Err(DbError::new(
                    Reason::TlsError,
                    "no trusted CA certificates found on this system: set `tls.ca_file`",
                ));
            }
            Ok(roots)
        }
    }
}

async fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, DbError> {
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        let reason = match Reason::from_io(&e) {
            Reason::InternalError => Reason::TlsError,
            r => r,
        };
        DbError::new(
            reason,
            format!("cannot read tls.ca_file {}: {e}", path.display()),
        )
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(DbError::new(
            Reason::TlsError,
            format!(
                "tls.ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// A rustls client config for the PostgreSQL driver.
pub(super) fn client_config(
    tls: &TlsSettings,
    roots: Vec<CertificateDer<'static>>,
) -> Result<ClientConfig, DbError> {
    let builder = client_config_builder()
        .map_err(|e| DbError::new(Reason::InternalError, format!("TLS setup: {e}")))?;
    let config = if tls.verify {
        let mut store = RootCertStore::empty();
        let (_added, _ignored) = store.add_parsable_certificates(roots);
        builder.with_root_certificates(store).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(accept_any_certificate())
            .with_no_client_auth()
    };
    Ok(config)
}

/// A TLS failure in words, naming the host the certificate was checked for.
pub(super) fn describe(err: &rustls::Error, host: &str) -> String {
    match err {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                CertificateError::UnknownIssuer => {
                    "unknown authority: the server's certificate is not signed by a trusted CA (set tls.ca_file to the CA that signed it)".to_string()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_string()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet (is the clock right?)".to_string()
                }
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    format!("name mismatch: the server's certificate is not valid for `{host}`")
                }
                CertificateError::Revoked => "the server's certificate is revoked".to_string(),
                other => format!("{other:?}"),
            };
            format!("certificate verify failed: {why}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server ended the TLS handshake with the alert {alert:?}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_usual_failures() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe(&e, "h").starts_with("certificate verify failed: unknown authority"));
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(describe(&e, "db.local").contains("not valid for `db.local`"));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        let found = crate::support::tls::find_rustls_error(&io).unwrap();
        assert!(describe(found, "h").contains("expired"));
    }
}
