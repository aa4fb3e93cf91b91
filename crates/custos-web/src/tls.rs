//! HTTPS: the rustls configuration (TLS 1.2 and 1.3 only, Mozilla
//! "intermediate" suites and groups) and the self-signed certificate that
//! `custos init` generates for a fresh installation.

use rustls::ServerConfig;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// Days a generated certificate is valid (CONTRACT: at most 366).
pub const SELF_SIGNED_DAYS: i64 = 365;
/// A generated certificate is renewed when it has fewer days left than this.
pub const RENEW_DAYS: i64 = 30;

/// Errors loading or generating TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The PEM content is not usable.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The rustls crypto provider: ring, restricted to the Mozilla "intermediate"
/// suites (ECDHE with AES-GCM or ChaCha20-Poly1305; TLS 1.3's three AEAD suites)
/// and groups X25519, P-256, P-384.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use provider::cipher_suite as cs;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            provider::kx_group::X25519,
            provider::kx_group::SECP256R1,
            provider::kx_group::SECP384R1,
        ],
        ..provider::default_provider()
    }
}

/// How [`server_config`] serves, in words, for the record of processing.
pub fn describe(self_signed: bool) -> String {
    format!(
        "HTTPS only, TLS 1.3 and 1.2 with rustls (HTTP/2 and HTTP/1.1); {}",
        if self_signed {
            "on the self-signed certificate Custos generated (browsers warn until a real one is installed)"
        } else {
            "on the certificate the operator installed"
        }
    )
}

/// Reads a PEM certificate chain and private key into a server configuration.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = std::fs::read(cert_path).map_err(io(cert_path))?;
    let key_pem = std::fs::read(key_path).map_err(io(key_path))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("{}: {e:?}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: no certificate found",
            cert_path.display()
        )));
    }
    let key: PrivateKeyDer<'static> = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| TlsError::Pem(format!("{}: no private key found", key_path.display())))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Generates a self-signed end-entity certificate (not a CA) for `localhost` and
/// `127.0.0.1`, valid for [`SELF_SIGNED_DAYS`] from `now`, and writes it and its
/// key (mode 0600) as PEM.
pub fn generate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    now: OffsetDateTime,
) -> Result<(), TlsError> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    dn.push(DnType::OrganizationName, "Custos self-signed");
    params.distinguished_name = dn;
    // An end-entity certificate: no basicConstraints at all (DER forbids encoding
    // the default cA=FALSE explicitly, and strict parsers reject it).
    params.is_ca = IsCa::NoCa;
    // A positive, non-zero 128-bit serial (RFC 5280 section 4.1.2.2).
    let mut serial: [u8; 16] =
        custos_crypto::random_bytes().map_err(|e| TlsError::Pem(e.to_string()))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    // Verifiers that follow the CA/Browser Forum profile require an authority
    // key identifier on end-entity certificates, self-signed ones included.
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let key = KeyPair::generate().map_err(|e| TlsError::Pem(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    write_private(key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, cert.pem()).map_err(io(cert_path))?;
    Ok(())
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

/// Days until the first certificate in a PEM file expires (negative if it has).
pub fn days_left(cert_path: &Path, now: OffsetDateTime) -> Result<i64, TlsError> {
    let pem = std::fs::read(cert_path).map_err(io(cert_path))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|_| TlsError::Pem(format!("{}: no certificate found", cert_path.display())))?;
    let not_after =
        x509_not_after(der.as_ref()).ok_or_else(|| TlsError::Pem("unreadable validity".into()))?;
    Ok((not_after - now).whole_days())
}

/// Finds notAfter in a DER certificate: the second time value of the validity
/// sequence. A small scan is enough for certificates we generated ourselves.
fn x509_not_after(der: &[u8]) -> Option<OffsetDateTime> {
    let mut times = Vec::new();
    let mut i = 0;
    while i + 2 < der.len() && times.len() < 2 {
        let tag = der[i];
        let len = der[i + 1] as usize;
        if ((tag == 0x17 && len == 13) || (tag == 0x18 && len == 15))
            && let Some(bytes) = der.get(i + 2..i + 2 + len)
            && let Some(t) = parse_asn1_time(tag, bytes)
        {
            times.push(t);
            i += 2 + len;
            continue;
        }
        i += 1;
    }
    times.get(1).copied()
}

fn parse_asn1_time(tag: u8, b: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = if tag == 0x17 {
        let yy: i32 = s.get(0..2)?.parse().ok()?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
    } else {
        (s.get(0..4)?.parse().ok()?, s.get(4..)?)
    };
    let num = |r: std::ops::Range<usize>| -> Option<u8> { rest.get(r)?.parse().ok() };
    let month = time::Month::try_from(num(0..2)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, num(2..4)?).ok()?;
    let t = time::Time::from_hms(num(4..6)?, num(6..8)?, num(8..10)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_and_reports_its_validity() {
        let dir = std::env::temp_dir().join(format!("custos-tls-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        let now = time::macros::datetime!(2026-01-01 00:00 UTC);
        generate_self_signed(&c, &k, now).expect("generate");
        server_config(&c, &k).expect("loads");
        assert_eq!(days_left(&c, now).expect("days"), SELF_SIGNED_DAYS);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&k).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
