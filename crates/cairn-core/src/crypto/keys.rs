//! The master key (held outside the database) and the keys derived from it.
//!
//! `CAIRN_MASTER_KEY` (or a key file) holds 32 random bytes as base64 or hex.
//! Purpose keys are derived with HKDF-SHA256 so that the audit key, and later
//! the secrets' key-encryption key, are never the master key itself.

use base64::Engine;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use crate::crypto::envelope::Kek;
use crate::{Error, Result};

/// 32 bytes of key material with an id (so keys can be rotated). `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// What a derived key is for; each purpose gets an independent key.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// HMAC key of the tamper-evident audit chain.
    Audit,
    /// Key-encryption key that wraps secrets' data keys.
    SecretsKek,
    /// HMAC key of the keyed hashes of secret values in audit records.
    SecretsAudit,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Audit => b"cairn/audit-chain/v1",
            Purpose::SecretsKek => b"cairn/secrets-kek/v1",
            Purpose::SecretsAudit => b"cairn/secrets-audit/v1",
        }
    }
}

impl MasterKey {
    /// Parse 32 bytes given as base64 (standard or URL-safe, padded or not) or 64 hex digits.
    /// The id is derived from the key (a fingerprint), so it never needs configuring.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).ok()
        } else {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(t).ok())
        };
        let bytes: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            Error::invalid("master_key", "must be 32 bytes as base64 or 64 hex digits")
        })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let fp = Hkdf::<Sha256>::new(Some(b"cairn"), &bytes);
        let mut id = [0u8; 6];
        // 6 bytes is far below HKDF's output limit: expand cannot fail.
        let _ = fp.expand(b"cairn/key-id/v1", &mut id);
        MasterKey {
            id: format!("mk_{}", hex::encode(id)),
            bytes,
        }
    }

    /// A new random key and its base64 text (for a key file).
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        (Self::from_bytes(bytes), text)
    }

    /// The key's public fingerprint id (`mk_…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key for one purpose.
    pub fn derive(&self, purpose: Purpose) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(b"cairn"), &self.bytes);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF's output limit: expand cannot fail.
        let _ = hk.expand(purpose.info(), &mut out);
        out
    }
}

/// The master key and the master keys being retired
/// (`Options::master_key`, `Options::previous_master_keys`): what the
/// features that seal, open or verify with a master key's purpose keys hold.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Keyring { current, previous }
    }

    /// The key new material is sealed under.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Keys being retired: what they sealed stays readable until re-wrapped.
    pub fn previous(&self) -> &[MasterKey] {
        &self.previous
    }

    /// The key-encryption key of the current master key.
    pub fn kek(&self) -> Kek {
        Kek::from_master(&self.current)
    }

    /// The key-encryption key with this id: the current master key's or a
    /// previous one's.
    pub fn kek_by_id(&self, id: &str) -> Option<Kek> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .map(Kek::from_master)
            .find(|k| k.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_formats_and_derivation() {
        let (k, text) = MasterKey::generate();
        let again = MasterKey::parse(&text).unwrap();
        assert_eq!(again.id(), k.id());
        assert_eq!(again.derive(Purpose::Audit), k.derive(Purpose::Audit));
        assert_ne!(k.derive(Purpose::Audit), k.derive(Purpose::SecretsKek));
        let hexed = MasterKey::parse(&"ab".repeat(32)).unwrap();
        assert!(hexed.id().starts_with("mk_"));
        assert_ne!(hexed.id(), k.id());
        assert!(MasterKey::parse("too short").is_err());
        assert!(MasterKey::parse(&"ab".repeat(31)).is_err());
        assert!(!format!("{k:?}").contains(&text));
    }
}
