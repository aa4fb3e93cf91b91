//! The relying-party side of WebAuthn Level 2 for passkeys and security keys,
//! over ring: ES256 (ECDSA P-256 with SHA-256) and EdDSA (Ed25519) credentials,
//! registered with `none` attestation (Custos trusts the person enrolling, not
//! the make of their authenticator, so attestation statements are not checked).
//!
//! Why not `webauthn-rs`: its 0.6 line needs Rust 1.89 (the workspace builds on
//! 1.88) and pulls a pre-release RustCrypto stack including `rsa`, which carries
//! an unfixed advisory (RUSTSEC-2023-0071) that `./scripts/advisories` refuses.
//! The checks below follow WebAuthn Level 2 sections 7.1 and 7.2 step by step.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;

use crate::{CryptoError, Result, sha256};

/// COSE algorithm id of ES256.
pub const ALG_ES256: i64 = -7;
/// COSE algorithm id of EdDSA.
pub const ALG_EDDSA: i64 = -8;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

/// Why a ceremony failed. One static message each: nothing from the client is
/// echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebauthnError {
    /// The client data is not JSON of the expected ceremony.
    #[error("client data is not a {0} ceremony")]
    Type(&'static str),
    /// The challenge is not the one issued.
    #[error("challenge does not match")]
    Challenge,
    /// The page's origin is not this server.
    #[error("origin does not match")]
    Origin,
    /// The authenticator data names another relying party.
    #[error("relying party does not match")]
    RpId,
    /// The person was not present (or not verified when required).
    #[error("user presence or verification missing")]
    UserPresence,
    /// The structure could not be read.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The key type or algorithm is not supported.
    #[error("unsupported credential algorithm")]
    Algorithm,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Signature,
    /// The signature counter went backwards: a cloned authenticator.
    #[error("signature counter did not increase")]
    Counter,
}

impl From<WebauthnError> for CryptoError {
    fn from(_: WebauthnError) -> Self {
        CryptoError::Format("webauthn response")
    }
}

/// Where ceremonies must come from.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    /// The RP id: the host name (never an IP address), e.g. `localhost`.
    pub id: String,
    /// Origins whose pages may run ceremonies, e.g. `https://localhost:8443`
    /// (empty: see [`RelyingParty::allows_origin`]).
    pub origins: Vec<String>,
}

/// A credential public key as stored: its COSE algorithm and raw key bytes
/// (an uncompressed P-256 point, or an Ed25519 key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialKey {
    /// COSE algorithm.
    pub alg: i64,
    /// Key bytes.
    pub key: Vec<u8>,
}

impl CredentialKey {
    /// Stored form: one byte naming the algorithm, then the key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let tag = if self.alg == ALG_EDDSA { 2u8 } else { 1u8 };
        let mut v = vec![tag];
        v.extend_from_slice(&self.key);
        v
    }

    /// Reads the stored form.
    pub fn from_bytes(b: &[u8]) -> Result<CredentialKey> {
        match b.split_first() {
            Some((1, k)) if k.len() == 65 => Ok(CredentialKey {
                alg: ALG_ES256,
                key: k.to_vec(),
            }),
            Some((2, k)) if k.len() == 32 => Ok(CredentialKey {
                alg: ALG_EDDSA,
                key: k.to_vec(),
            }),
            _ => Err(CryptoError::Format("credential key")),
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> std::result::Result<(), WebauthnError> {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            ALG_ES256 => &signature::ECDSA_P256_SHA256_ASN1,
            ALG_EDDSA => &signature::ED25519,
            _ => return Err(WebauthnError::Algorithm),
        };
        signature::UnparsedPublicKey::new(alg, &self.key)
            .verify(message, sig)
            .map_err(|_| WebauthnError::Signature)
    }
}

/// A credential that passed registration.
#[derive(Debug, Clone)]
pub struct RegisteredCredential {
    /// The credential id the authenticator chose.
    pub credential_id: Vec<u8>,
    /// Its public key.
    pub key: CredentialKey,
    /// The signature counter at registration.
    pub sign_count: u32,
    /// Whether the person was verified (PIN, biometrics).
    pub user_verified: bool,
}

/// Decodes base64url with or without padding (what browsers and JS send).
pub fn b64url_decode(s: &str) -> std::result::Result<Vec<u8>, WebauthnError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| WebauthnError::Malformed("base64url"))
}

/// Encodes base64url without padding.
pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn check_client_data(
    rp: &RelyingParty,
    client_data_json: &[u8],
    ceremony: &'static str,
    challenge: &[u8],
) -> std::result::Result<(), WebauthnError> {
    let v: serde_json::Value =
        serde_json::from_slice(client_data_json).map_err(|_| WebauthnError::Type(ceremony))?;
    if v.get("type").and_then(|t| t.as_str()) != Some(ceremony) {
        return Err(WebauthnError::Type(ceremony));
    }
    let got = v
        .get("challenge")
        .and_then(|c| c.as_str())
        .ok_or(WebauthnError::Challenge)
        .and_then(b64url_decode)?;
    if !crate::constant_time_eq(&got, challenge) {
        return Err(WebauthnError::Challenge);
    }
    let origin = v.get("origin").and_then(|o| o.as_str()).unwrap_or_default();
    if !rp.allows_origin(origin) {
        return Err(WebauthnError::Origin);
    }
    Ok(())
}

impl RelyingParty {
    /// Whether a page origin may run ceremonies: one of `origins`, or when that
    /// list is empty, `https://` on the RP id with any port (and plain
    /// `http://localhost`, which browsers treat as a secure context).
    pub fn allows_origin(&self, origin: &str) -> bool {
        if !self.origins.is_empty() {
            return self.origins.iter().any(|o| o == origin);
        }
        let host_port = |rest: &str| {
            rest == self.id
                || rest.strip_prefix(self.id.as_str()).is_some_and(|p| {
                    p.strip_prefix(':')
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                })
        };
        match origin.split_once("://") {
            Some(("https", rest)) => host_port(rest),
            Some(("http", rest)) => self.id == "localhost" && host_port(rest),
            _ => false,
        }
    }
}

struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    attested: Option<(Vec<u8>, CredentialKey)>,
}

fn parse_auth_data(d: &[u8]) -> std::result::Result<AuthData<'_>, WebauthnError> {
    let bad = WebauthnError::Malformed("authenticator data");
    if d.len() < 37 {
        return Err(bad);
    }
    let flags = d[32];
    let sign_count = u32::from_be_bytes([d[33], d[34], d[35], d[36]]);
    let mut attested = None;
    if flags & FLAG_AT != 0 {
        let rest = &d[37..];
        if rest.len() < 18 {
            return Err(bad);
        }
        let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        let id = rest.get(18..18 + id_len).ok_or(bad)?.to_vec();
        let mut cbor = Cbor::new(&rest[18 + id_len..]);
        let key = cose_key(&cbor.value(0)?)?;
        attested = Some((id, key));
    }
    Ok(AuthData {
        rp_id_hash: &d[..32],
        flags,
        sign_count,
        attested,
    })
}

fn check_rp_and_presence(
    rp: &RelyingParty,
    a: &AuthData<'_>,
    require_uv: bool,
) -> std::result::Result<(), WebauthnError> {
    if !crate::constant_time_eq(a.rp_id_hash, &sha256(rp.id.as_bytes())) {
        return Err(WebauthnError::RpId);
    }
    if a.flags & FLAG_UP == 0 || (require_uv && a.flags & FLAG_UV == 0) {
        return Err(WebauthnError::UserPresence);
    }
    Ok(())
}

/// Verifies a registration (`navigator.credentials.create`) response: its
/// client data and attestation object, as sent by the browser (raw bytes).
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
    require_uv: bool,
) -> std::result::Result<RegisteredCredential, WebauthnError> {
    check_client_data(rp, client_data_json, "webauthn.create", challenge)?;
    let mut cbor = Cbor::new(attestation_object);
    let obj = cbor.value(0)?;
    let auth_data = obj
        .map_get_text("authData")
        .and_then(CborValue::as_bytes)
        .ok_or(WebauthnError::Malformed("attestation object"))?;
    let a = parse_auth_data(auth_data)?;
    check_rp_and_presence(rp, &a, require_uv)?;
    let (credential_id, key) = a
        .attested
        .ok_or(WebauthnError::Malformed("attested credential data"))?;
    if credential_id.is_empty() || credential_id.len() > 1023 {
        return Err(WebauthnError::Malformed("credential id"));
    }
    Ok(RegisteredCredential {
        credential_id,
        key,
        sign_count: a.sign_count,
        user_verified: a.flags & FLAG_UV != 0,
    })
}

/// Verifies an assertion (`navigator.credentials.get`) by a known credential.
/// Returns the new signature counter to store.
#[allow(clippy::too_many_arguments)]
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &[u8],
    key: &CredentialKey,
    stored_count: u32,
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature_der: &[u8],
    require_uv: bool,
) -> std::result::Result<u32, WebauthnError> {
    check_client_data(rp, client_data_json, "webauthn.get", challenge)?;
    let a = parse_auth_data(authenticator_data)?;
    check_rp_and_presence(rp, &a, require_uv)?;
    let mut signed = authenticator_data.to_vec();
    signed.extend_from_slice(&sha256(client_data_json));
    key.verify(&signed, signature_der)?;
    // Counters of zero mean the authenticator keeps none (most passkeys).
    if (a.sign_count != 0 || stored_count != 0) && a.sign_count <= stored_count {
        return Err(WebauthnError::Counter);
    }
    Ok(a.sign_count)
}

fn cose_key(v: &CborValue) -> std::result::Result<CredentialKey, WebauthnError> {
    let bad = WebauthnError::Malformed("credential public key");
    let int = |k: i64| v.map_get_int(k).and_then(CborValue::as_int);
    let bytes = |k: i64| v.map_get_int(k).and_then(CborValue::as_bytes);
    match (int(1), int(3)) {
        // kty EC2, ES256, crv P-256
        (Some(2), Some(ALG_ES256)) => {
            if int(-1) != Some(1) {
                return Err(WebauthnError::Algorithm);
            }
            let (x, y) = (bytes(-2).ok_or(bad)?, bytes(-3).ok_or(bad)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(bad);
            }
            let mut key = vec![0x04];
            key.extend_from_slice(x);
            key.extend_from_slice(y);
            Ok(CredentialKey {
                alg: ALG_ES256,
                key,
            })
        }
        // kty OKP, EdDSA, crv Ed25519
        (Some(1), Some(ALG_EDDSA)) => {
            if int(-1) != Some(6) {
                return Err(WebauthnError::Algorithm);
            }
            let x = bytes(-2).ok_or(bad)?;
            if x.len() != 32 {
                return Err(bad);
            }
            Ok(CredentialKey {
                alg: ALG_EDDSA,
                key: x.to_vec(),
            })
        }
        (Some(_), Some(_)) => Err(WebauthnError::Algorithm),
        _ => Err(bad),
    }
}

/// A decoded CBOR item (RFC 8949), the subset WebAuthn uses.
#[derive(Debug, Clone, PartialEq)]
enum CborValue {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<CborValue>),
    Map(Vec<(CborValue, CborValue)>),
    Simple(u8),
}

impl CborValue {
    fn as_int(&self) -> Option<i64> {
        match self {
            CborValue::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            CborValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
    fn map_get_int(&self, k: i64) -> Option<&CborValue> {
        match self {
            CborValue::Map(m) => m
                .iter()
                .find(|(key, _)| *key == CborValue::Int(k))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    fn map_get_text(&self, k: &str) -> Option<&CborValue> {
        match self {
            CborValue::Map(m) => m
                .iter()
                .find(|(key, _)| matches!(key, CborValue::Text(t) if t == k))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Cbor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cbor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cbor { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], WebauthnError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(WebauthnError::Malformed("CBOR"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arg(&mut self, info: u8) -> std::result::Result<u64, WebauthnError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => {
                let b = self.take(2)?;
                u64::from(u16::from_be_bytes([b[0], b[1]]))
            }
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_be_bytes(a)
            }
            _ => return Err(WebauthnError::Malformed("CBOR (indefinite length)")),
        })
    }

    fn value(&mut self, depth: u32) -> std::result::Result<CborValue, WebauthnError> {
        let bad = WebauthnError::Malformed("CBOR");
        if depth > 16 {
            return Err(bad);
        }
        let head = self.take(1)?[0];
        let (major, info) = (head >> 5, head & 0x1f);
        let n = self.arg(info)?;
        let len = |n: u64| usize::try_from(n).map_err(|_| bad);
        Ok(match major {
            0 => CborValue::Int(i64::try_from(n).map_err(|_| bad)?),
            1 => CborValue::Int(-1 - i64::try_from(n).map_err(|_| bad)?),
            2 => CborValue::Bytes(self.take(len(n)?)?.to_vec()),
            3 => CborValue::Text(String::from_utf8(self.take(len(n)?)?.to_vec()).map_err(|_| bad)?),
            4 => {
                let n = len(n)?;
                if n > self.data.len() {
                    return Err(bad);
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(depth + 1)?);
                }
                CborValue::Array(v)
            }
            5 => {
                let n = len(n)?;
                if n > self.data.len() {
                    return Err(bad);
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.value(depth + 1)?;
                    let val = self.value(depth + 1)?;
                    v.push((k, val));
                }
                CborValue::Map(v)
            }
            7 if info < 24 => CborValue::Simple(info),
            _ => return Err(bad),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn rp() -> RelyingParty {
        RelyingParty {
            id: "localhost".into(),
            origins: vec!["https://localhost:8443".into()],
        }
    }

    fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"{kind}","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#,
            b64url(challenge)
        )
        .into_bytes()
    }

    fn cbor_head(major: u8, n: usize) -> Vec<u8> {
        let m = major << 5;
        if n < 24 {
            vec![m | n as u8]
        } else if n < 256 {
            vec![m | 24, n as u8]
        } else {
            let mut v = vec![m | 25];
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v
        }
    }

    fn cbor_bytes(b: &[u8]) -> Vec<u8> {
        let mut v = cbor_head(2, b.len());
        v.extend_from_slice(b);
        v
    }

    fn cbor_text(s: &str) -> Vec<u8> {
        let mut v = cbor_head(3, s.len());
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn cbor_int(i: i64) -> Vec<u8> {
        if i >= 0 {
            cbor_head(0, i as usize)
        } else {
            cbor_head(1, (-1 - i) as usize)
        }
    }

    fn es256_cose(public: &[u8]) -> Vec<u8> {
        let mut v = cbor_head(5, 5);
        v.extend(cbor_int(1));
        v.extend(cbor_int(2));
        v.extend(cbor_int(3));
        v.extend(cbor_int(-7));
        v.extend(cbor_int(-1));
        v.extend(cbor_int(1));
        v.extend(cbor_int(-2));
        v.extend(cbor_bytes(&public[1..33]));
        v.extend(cbor_int(-3));
        v.extend(cbor_bytes(&public[33..65]));
        v
    }

    fn auth_data(flags: u8, count: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
        let mut d = sha256(b"localhost").to_vec();
        d.push(flags);
        d.extend_from_slice(&count.to_be_bytes());
        if let Some((id, cose)) = attested {
            d.extend_from_slice(&[0u8; 16]);
            d.extend_from_slice(&(id.len() as u16).to_be_bytes());
            d.extend_from_slice(id);
            d.extend_from_slice(cose);
        }
        d
    }

    fn attestation(auth: &[u8]) -> Vec<u8> {
        let mut v = cbor_head(5, 3);
        v.extend(cbor_text("fmt"));
        v.extend(cbor_text("none"));
        v.extend(cbor_text("attStmt"));
        v.extend(cbor_head(5, 0));
        v.extend(cbor_text("authData"));
        v.extend(cbor_bytes(auth));
        v
    }

    #[test]
    fn es256_registers_and_signs_in_and_tampering_fails() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("keygen");
        let kp = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("key");
        let public = kp.public_key().as_ref().to_vec();
        let cred_id = b"credential-1";
        let challenge = b"registration challenge 32 bytes!";
        let auth = auth_data(
            FLAG_UP | FLAG_UV | FLAG_AT,
            0,
            Some((cred_id, &es256_cose(&public))),
        );
        let cd = client_data("webauthn.create", challenge, "https://localhost:8443");
        let reg = verify_registration(&rp(), challenge, &cd, &attestation(&auth), true)
            .expect("registers");
        assert_eq!(reg.credential_id, cred_id);
        assert_eq!(reg.key.key, public);
        let stored = CredentialKey::from_bytes(&reg.key.to_bytes()).expect("round trip");

        // Wrong challenge, origin, ceremony type.
        assert_eq!(
            verify_registration(&rp(), b"other", &cd, &attestation(&auth), true).err(),
            Some(WebauthnError::Challenge)
        );
        let evil = client_data("webauthn.create", challenge, "https://evil.example");
        assert_eq!(
            verify_registration(&rp(), challenge, &evil, &attestation(&auth), true).err(),
            Some(WebauthnError::Origin)
        );

        // Sign in.
        let challenge = b"sign-in challenge";
        let auth = auth_data(FLAG_UP | FLAG_UV, 5, None);
        let cd = client_data("webauthn.get", challenge, "https://localhost:8443");
        let mut msg = auth.clone();
        msg.extend_from_slice(&sha256(&cd));
        let sig = kp.sign(&rng, &msg).expect("sign");
        let count = verify_assertion(&rp(), challenge, &stored, 0, &cd, &auth, sig.as_ref(), true)
            .expect("verifies");
        assert_eq!(count, 5);
        // Replayed counter, changed data, no user verification.
        assert_eq!(
            verify_assertion(&rp(), challenge, &stored, 5, &cd, &auth, sig.as_ref(), true).err(),
            Some(WebauthnError::Counter)
        );
        let mut changed = auth.clone();
        changed[36] ^= 1;
        assert_eq!(
            verify_assertion(
                &rp(),
                challenge,
                &stored,
                0,
                &cd,
                &changed,
                sig.as_ref(),
                true
            )
            .err(),
            Some(WebauthnError::Signature)
        );
        let no_uv = auth_data(FLAG_UP, 6, None);
        assert_eq!(
            verify_assertion(
                &rp(),
                challenge,
                &stored,
                0,
                &cd,
                &no_uv,
                sig.as_ref(),
                true
            )
            .err(),
            Some(WebauthnError::UserPresence)
        );
    }

    #[test]
    fn origins_default_to_the_rp_id_on_any_port() {
        let rp = RelyingParty {
            id: "localhost".into(),
            origins: vec![],
        };
        assert!(rp.allows_origin("https://localhost"));
        assert!(rp.allows_origin("https://localhost:8443"));
        assert!(rp.allows_origin("http://localhost:8080"));
        assert!(!rp.allows_origin("https://localhost.evil.example"));
        assert!(!rp.allows_origin("https://localhost:"));
        assert!(!rp.allows_origin("https://evil.example"));
        let rp = RelyingParty {
            id: "crm.example".into(),
            origins: vec![],
        };
        assert!(!rp.allows_origin("http://crm.example"));
        assert!(rp.allows_origin("https://crm.example"));
    }

    #[test]
    fn ed25519_signs_in() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let key = CredentialKey {
            alg: ALG_EDDSA,
            key: kp.public_key().as_ref().to_vec(),
        };
        let key = CredentialKey::from_bytes(&key.to_bytes()).expect("round trip");
        let auth = auth_data(FLAG_UP, 0, None);
        let cd = client_data("webauthn.get", b"c", "https://localhost:8443");
        let mut msg = auth.clone();
        msg.extend_from_slice(&sha256(&cd));
        let sig = kp.sign(&msg);
        assert_eq!(
            verify_assertion(&rp(), b"c", &key, 0, &cd, &auth, sig.as_ref(), false),
            Ok(0)
        );
    }

    #[test]
    fn malformed_cbor_is_an_error_not_a_panic() {
        for bytes in [
            &[][..],
            &[0xa1],
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x9f],
            &[0xbb, 0, 0, 0, 0, 0, 0, 0, 9],
        ] {
            assert!(
                verify_registration(
                    &rp(),
                    b"c",
                    &client_data("webauthn.create", b"c", "https://localhost:8443"),
                    bytes,
                    false
                )
                .is_err()
            );
        }
    }
}
