//! Signed checkpoints: a C2SP `tlog-checkpoint` body in a C2SP signed note,
//! signed with Ed25519.
//!
//! A checkpoint commits the log to a tree size and root. Once an outside party
//! (a witness, an auditor) holds one, the log cannot be rewritten below that
//! size without a consistency proof failing. The formats follow
//! <https://c2sp.org/signed-note> and <https://c2sp.org/tlog-checkpoint>
//! byte for byte, so standard tooling (Go's `golang.org/x/mod/sumdb/note`,
//! transparency-dev witnesses) can check our checkpoints and we can check
//! theirs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::Hash;

/// Signature type byte of Ed25519 in C2SP signed notes.
const ALG_ED25519: u8 = 0x01;
/// Every signature line starts with an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Most signature lines read from one note; the same cap as Go's `note.Open`
/// (the spec asks for at least 16), so a hostile note cannot make us parse
/// forever.
const MAX_SIGNATURES: usize = 100;

/// Why a key, note or checkpoint was refused. Deliberately coarse: a verifier
/// learns what was wrong, an attacker gets no oracle beyond that.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// A key name is empty or contains a space, a `+` or a control character.
    #[error("invalid key name")]
    InvalidKeyName,
    /// The verifier key is not `name+keyid+base64(0x01 ‖ public key)`.
    #[error("malformed verifier key")]
    MalformedVerifierKey,
    /// The verifier key's id does not match its name and public key.
    #[error("verifier key id does not match the key")]
    VerifierKeyIdMismatch,
    /// The key is not an Ed25519 key.
    #[error("unsupported signature algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    /// The private key material was refused (wrong length or encoding).
    #[error("private key rejected")]
    KeyRejected,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// The note does not have the signed-note syntax.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// The note carries no signature from the expected key.
    #[error("note has no signature from the expected key")]
    NoMatchingSignature,
    /// The note carries a signature from the expected key that does not verify.
    #[error("invalid signature from the expected key")]
    InvalidSignature,
    /// The note text is not a valid checkpoint body.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
}

/// A tree head: the log `origin` had `size` leaves with Merkle root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log identity, e.g. `custos.example.org/audit`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 9162 root hash at that size.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Parses a checkpoint note text (as returned by [`verify_note`]): origin,
    /// decimal size without leading zeros, base64 32-byte root, then optional
    /// non-empty extension lines, which are accepted and not kept.
    pub fn from_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        let text = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MalformedCheckpoint(
                "text must end with a newline",
            ))?;
        let mut lines = text.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines
            .next()
            .ok_or(CheckpointError::MalformedCheckpoint("missing tree size"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::MalformedCheckpoint("missing root hash"))?;
        check_origin(origin)?;
        if lines.any(str::is_empty) {
            return Err(CheckpointError::MalformedCheckpoint("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
        })
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty() {
        return Err(CheckpointError::MalformedCheckpoint("empty origin"));
    }
    if origin.chars().any(|c| c.is_control()) {
        return Err(CheckpointError::MalformedCheckpoint(
            "control character in origin",
        ));
    }
    Ok(())
}

/// ASCII decimal with no sign, no leading zeros (except `0` itself), in range:
/// one size, one spelling.
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return Err(CheckpointError::MalformedCheckpoint(
            "tree size is not a canonical decimal",
        ));
    }
    s.parse::<u64>()
        .map_err(|_| CheckpointError::MalformedCheckpoint("tree size out of range"))
}

/// Standard padded base64 of exactly 32 bytes, in its one canonical spelling.
fn parse_root(s: &str) -> Result<Hash, CheckpointError> {
    let bytes = BASE64
        .decode(s)
        .map_err(|_| CheckpointError::MalformedCheckpoint("root hash is not base64"))?;
    let root = Hash::try_from(bytes.as_slice())
        .map_err(|_| CheckpointError::MalformedCheckpoint("root hash is not 32 bytes"))?;
    if BASE64.encode(root) != s {
        return Err(CheckpointError::MalformedCheckpoint(
            "root hash is not canonical base64",
        ));
    }
    Ok(root)
}

/// C2SP key names: non-empty, no Unicode spaces, no `+` (it separates the
/// parts of a verifier key), and no control characters (notes forbid them).
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// The key id: the first four bytes, big-endian, of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
fn key_id(name: &str, public_key: &[u8]) -> u32 {
    let mut ctx = Context::new(&SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ALG_ED25519]);
    ctx.update(public_key);
    let digest = ctx.finish();
    let mut id = [0u8; 4];
    for (o, b) in id.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    u32::from_be_bytes(id)
}

/// Signs checkpoints (and other note texts) as one named Ed25519 key.
pub struct NoteSigner {
    name: String,
    key_pair: Ed25519KeyPair,
    public_key: [u8; 32],
    key_id: u32,
}

impl std::fmt::Debug for NoteSigner {
    // Never print key material; the verifier key is public.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("verifier_key", &self.verifier_key())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed or a PKCS#8 document (as ring's
    /// `Ed25519KeyPair::generate_pkcs8` produces), told apart by length.
    pub fn new(name: &str, pkcs8_or_seed: &[u8]) -> Result<NoteSigner, CheckpointError> {
        let key_pair = if pkcs8_or_seed.len() == 32 {
            Ed25519KeyPair::from_seed_unchecked(pkcs8_or_seed)
        } else {
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8_or_seed)
        }
        .map_err(|_| CheckpointError::KeyRejected)?;
        Self::from_key_pair(name, key_pair)
    }

    /// A signer from a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, CheckpointError> {
        let key_pair =
            Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| CheckpointError::KeyRejected)?;
        Self::from_key_pair(name, key_pair)
    }

    /// A fresh signer and its 32-byte seed. The caller must seal the seed
    /// (encrypt it under the master key) before storing it anywhere, and should
    /// zeroize its copy once sealed.
    pub fn generate(name: &str) -> Result<(NoteSigner, Vec<u8>), CheckpointError> {
        if !is_valid_key_name(name) {
            return Err(CheckpointError::InvalidKeyName);
        }
        // Zeroizing so our own copy of the seed does not linger in memory.
        let mut seed = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(seed.as_mut())
            .map_err(|_| CheckpointError::Random)?;
        let signer = Self::from_seed(name, &seed)?;
        Ok((signer, seed.to_vec()))
    }

    fn from_key_pair(name: &str, key_pair: Ed25519KeyPair) -> Result<NoteSigner, CheckpointError> {
        if !is_valid_key_name(name) {
            return Err(CheckpointError::InvalidKeyName);
        }
        let public_key = <[u8; 32]>::try_from(key_pair.public_key().as_ref())
            .map_err(|_| CheckpointError::KeyRejected)?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            key_pair,
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id that prefixes every signature.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The note verifier key, `name+keyid+base64(0x01 ‖ public key)` with the
    /// key id as 8 lower-case hex digits; what verifiers are configured with.
    pub fn verifier_key(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(key))
    }

    /// The signed note for `checkpoint`: its body, a blank line and our
    /// signature line. Refuses an origin that would break the note format.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        // Control characters include the newline that would split the origin line.
        check_origin(&checkpoint.origin)?;
        self.sign_note(&checkpoint.body())
    }

    /// Signs an arbitrary note text, which must be non-empty, end with a
    /// newline and contain no other control characters.
    pub fn sign_note(&self, text: &str) -> Result<String, CheckpointError> {
        if !text.ends_with('\n') {
            return Err(CheckpointError::MalformedNote(
                "text must end with a newline",
            ));
        }
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(CheckpointError::MalformedNote("control character"));
        }
        let signature = self.key_pair.sign(text.as_bytes());
        let mut sig = Vec::with_capacity(4 + 64);
        sig.extend_from_slice(&self.key_id.to_be_bytes());
        sig.extend_from_slice(signature.as_ref());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(sig)
        ))
    }
}

/// A parsed verifier key.
struct Verifier {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

fn parse_verifier_key(vkey: &str) -> Result<Verifier, CheckpointError> {
    let (name, rest) = vkey
        .split_once('+')
        .ok_or(CheckpointError::MalformedVerifierKey)?;
    let (id_hex, key_b64) = rest
        .split_once('+')
        .ok_or(CheckpointError::MalformedVerifierKey)?;
    if !is_valid_key_name(name) {
        return Err(CheckpointError::InvalidKeyName);
    }
    // Exactly 8 hex digits: `from_str_radix` alone would accept a sign.
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CheckpointError::MalformedVerifierKey);
    }
    let key_id =
        u32::from_str_radix(id_hex, 16).map_err(|_| CheckpointError::MalformedVerifierKey)?;
    let key = BASE64
        .decode(key_b64)
        .map_err(|_| CheckpointError::MalformedVerifierKey)?;
    let (&alg, public_key) = key
        .split_first()
        .ok_or(CheckpointError::MalformedVerifierKey)?;
    if alg != ALG_ED25519 {
        return Err(CheckpointError::UnsupportedAlgorithm(alg));
    }
    let public_key =
        <[u8; 32]>::try_from(public_key).map_err(|_| CheckpointError::MalformedVerifierKey)?;
    if key_id != self::key_id(name, &public_key) {
        return Err(CheckpointError::VerifierKeyIdMismatch);
    }
    Ok(Verifier {
        name: name.to_owned(),
        key_id,
        public_key,
    })
}

/// Verifies a C2SP signed note against one verifier key and returns its text
/// (ending in a newline, without the blank line and signatures).
///
/// Follows the spec and Go's `note.Open`: the text is separated from the
/// signatures by the last blank line; every signature line must be well
/// formed; signatures from other keys are ignored; the first signature from
/// this key (same name and id) must verify, and at least one must be present.
pub fn verify_note(note: &str, verifier_key: &str) -> Result<String, CheckpointError> {
    let verifier = parse_verifier_key(verifier_key)?;
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(CheckpointError::MalformedNote("control character"));
    }
    let split = note.rfind("\n\n").ok_or(CheckpointError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or(CheckpointError::MalformedNote(
            "signatures must end with a newline",
        ))?;
    let mut verified = false;
    for (count, line) in sigs.split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(CheckpointError::MalformedNote("too many signatures"));
        }
        let (name, id, signature) = parse_signature_line(line)?;
        // Only the first line from our key is checked, as in Go; later
        // duplicates are ignored whatever they hold.
        if verified || name != verifier.name || id != verifier.key_id {
            continue;
        }
        UnparsedPublicKey::new(&ED25519, &verifier.public_key)
            .verify(text.as_bytes(), &signature)
            .map_err(|_| CheckpointError::InvalidSignature)?;
        verified = true;
    }
    if !verified {
        return Err(CheckpointError::NoMatchingSignature);
    }
    Ok(text.to_owned())
}

/// Splits `— name base64(keyid ‖ signature)` into its parts.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), CheckpointError> {
    const BAD: CheckpointError = CheckpointError::MalformedNote("bad signature line");
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(BAD)?;
    let (name, b64) = rest.split_once(' ').ok_or(BAD)?;
    if !is_valid_key_name(name) || b64.is_empty() {
        return Err(BAD);
    }
    let raw = BASE64.decode(b64).map_err(|_| BAD)?;
    if raw.len() < 5 {
        return Err(BAD);
    }
    let (id, signature) = raw.split_at(4);
    let id = u32::from_be_bytes(<[u8; 4]>::try_from(id).map_err(|_| BAD)?);
    Ok((name, id, signature.to_vec()))
}

/// Verifies a signed checkpoint note against `verifier_key` and parses its body.
pub fn verify_checkpoint(note: &str, verifier_key: &str) -> Result<Checkpoint, CheckpointError> {
    let body = verify_note(note, verifier_key)?;
    Checkpoint::from_body(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_one_spelling() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("20852163"), Ok(20_852_163));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "18446744073709551616",
            "1e3",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roots_have_one_spelling() {
        let good = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        assert!(parse_root(good).is_ok());
        // Missing padding, trailing bits set, wrong length.
        assert!(parse_root("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I").is_err());
        assert!(parse_root("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=").is_err());
        assert!(parse_root("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx").is_err());
    }

    #[test]
    fn spec_example_body_parses() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let cp = Checkpoint::from_body(body);
        assert_eq!(cp.as_ref().map(|c| c.size), Ok(20_852_163));
        assert_eq!(cp.map(|c| c.body()), Ok(body.to_owned()));
    }

    #[test]
    fn key_names() {
        assert!(is_valid_key_name("example.com/log"));
        assert!(!is_valid_key_name(""));
        assert!(!is_valid_key_name("a b"));
        assert!(!is_valid_key_name("a+b"));
        assert!(!is_valid_key_name("a\u{a0}b"));
    }
}
