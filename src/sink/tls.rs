//! TLS to PostgreSQL with rustls, chosen by libpq's `sslmode` (and `sslrootcert`) in the URL:
//! `disable`; `prefer` (the default: TLS when the server offers it, unverified, as libpq);
//! `require` (TLS, unverified); `verify-ca` (TLS, chain checked against `sslrootcert`);
//! `verify-full` (that, and the host name).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::config::redact_url;
use crate::error::{Error, Result};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A URL's TLS settings, and the URL without them (tokio-postgres knows only some of them).
#[derive(Debug)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    pub url: String,
}

/// Splits `sslmode` and `sslrootcert` off a connection URL.
pub fn settings(url: &str) -> Result<TlsSettings> {
    let bad = |problem: String| Error::config("database.url", format!("{}: {problem}", redact_url(url)));
    let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let (mut mode, mut root_cert) = (SslMode::Prefer, None);
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                mode = match value.as_ref() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(&kept);
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(bad(
            "sslmode verify-ca and verify-full need sslrootcert=<CA file>".into(),
        ));
    }
    Ok(TlsSettings {
        mode,
        root_cert,
        url: parsed.to_string(),
    })
}

/// The TLS connector for the settings, as every connection to the server (and a cancel
/// request) makes it.
pub fn connector(s: &TlsSettings) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(client_config(s)?))
}

/// The rustls client configuration for the settings.
pub fn client_config(s: &TlsSettings) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (&s.root_cert, s.mode) {
        (Some(path), SslMode::VerifyCa | SslMode::VerifyFull) => {
            let unreadable = |e: String| Error::config("sslrootcert", format!("{}: {e}", path.display()));
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| unreadable(e.to_string()))?)
                    .map_err(|e| unreadable(e.to_string()))?;
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| unreadable(e.to_string()))?;
            Arc::new(Verify {
                webpki,
                check_name: s.mode == SslMode::VerifyFull,
            })
        }
        _ => Arc::new(Unverified(provider)),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// verify-ca / verify-full: the chain against the CA file; the name only for verify-full.
#[derive(Debug)]
struct Verify {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }))
                if !self.check_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// prefer / require: encrypted, the certificate not checked (libpq's meaning of these modes);
/// handshake signatures are still verified.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_taken_off_the_url_and_verify_modes_need_a_ca() {
        let s = settings(
            "postgres://u:pw@db:5432/koku?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(s.url, "postgres://u:pw@db:5432/koku?application_name=x");
        assert_eq!(settings("postgres://db/koku").unwrap().mode, SslMode::Prefer);
        let e = settings("postgres://u:secret-pw@db/koku?sslmode=verify-ca").unwrap_err();
        assert!(
            e.to_string().contains("need sslrootcert") && !e.to_string().contains("secret-pw"),
            "{e}"
        );
        assert!(settings("postgres://db/koku?sslmode=bogus").is_err());
    }
}
