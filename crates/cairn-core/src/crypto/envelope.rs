//! Envelope encryption of secret values (pure: no IO).
//!
//! Each secret version gets its own random 256-bit data key. The value is
//! sealed with AES-256-GCM under the data key; the data key is sealed with
//! AES-256-GCM under the key-encryption key (KEK, derived from the master key
//! that never enters the database). Both use fresh random 96-bit nonces, and
//! both bind the secret's identity — (name, app, env, version) — as associated
//! data, so a ciphertext moved to another row does not decrypt. The KEK's id
//! is stored with the ciphertext so the master key can be rotated (`rewrap`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::keys::{MasterKey, Purpose};

const NONCE_LEN: usize = 12;

/// The key-encryption key and its id.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    pub fn from_master(master: &MasterKey) -> Self {
        Kek {
            id: master.id().to_owned(),
            key: master.derive(Purpose::SecretsKek),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Which secret version a ciphertext belongs to (the associated data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretId<'a> {
    pub name: &'a str,
    pub app: &'a str,
    pub env: &'a str,
    pub version: i64,
}

impl SecretId<'_> {
    fn aad(&self, part: &str) -> Vec<u8> {
        // Length-prefixed fields: no two identities share an encoding.
        let mut out = Vec::new();
        for f in ["cairn/secret/v1", part, self.name, self.app, self.env] {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }
}

/// A sealed secret value as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Id of the KEK that wrapped the data key.
    pub kek_id: String,
    /// nonce ‖ AES-256-GCM(KEK, data key).
    pub wrapped_key: Vec<u8>,
    /// nonce ‖ AES-256-GCM(data key, value).
    pub ciphertext: Vec<u8>,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("sealed by key {found}, but the key at hand is {expected}")]
    WrongKek { expected: String, found: String },
    #[error("the ciphertext does not authenticate (tampered, moved, or the wrong key)")]
    Corrupt,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = random::<NONCE_LEN>();
    // Encryption with a valid key and nonce cannot fail for inputs this size.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(EnvelopeError::Corrupt);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| EnvelopeError::Corrupt)
}

/// Seal `plaintext` for secret `id` under a fresh data key wrapped by `kek`.
pub fn seal(kek: &Kek, id: &SecretId<'_>, plaintext: &[u8]) -> Sealed {
    let data_key = random::<32>();
    Sealed {
        kek_id: kek.id.clone(),
        wrapped_key: seal_with(&kek.key, &id.aad("data-key"), &data_key),
        ciphertext: seal_with(&data_key, &id.aad("value"), plaintext),
    }
}

/// Open a sealed value of secret `id`.
pub fn open(kek: &Kek, id: &SecretId<'_>, sealed: &Sealed) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.kek_id != kek.id {
        return Err(EnvelopeError::WrongKek {
            expected: kek.id.clone(),
            found: sealed.kek_id.clone(),
        });
    }
    let data_key: [u8; 32] = open_with(&kek.key, &id.aad("data-key"), &sealed.wrapped_key)?
        .try_into()
        .map_err(|_| EnvelopeError::Corrupt)?;
    open_with(&data_key, &id.aad("value"), &sealed.ciphertext)
}

/// Re-wrap the data key under a new KEK (master-key rotation); the value's
/// ciphertext is untouched.
pub fn rewrap(
    old: &Kek,
    new: &Kek,
    id: &SecretId<'_>,
    sealed: &Sealed,
) -> Result<Sealed, EnvelopeError> {
    if sealed.kek_id != old.id {
        return Err(EnvelopeError::WrongKek {
            expected: old.id.clone(),
            found: sealed.kek_id.clone(),
        });
    }
    let data_key = open_with(&old.key, &id.aad("data-key"), &sealed.wrapped_key)?;
    Ok(Sealed {
        kek_id: new.id.clone(),
        wrapped_key: seal_with(&new.key, &id.aad("data-key"), &data_key),
        ciphertext: sealed.ciphertext.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kek() -> Kek {
        Kek::from_master(&MasterKey::from_bytes([3u8; 32]))
    }

    fn id(version: i64) -> SecretId<'static> {
        SecretId {
            name: "db/password",
            app: "billing",
            env: "prod",
            version,
        }
    }

    #[test]
    fn round_trip_rewrap_and_fresh_keys() {
        let k = kek();
        let s = seal(&k, &id(1), b"hunter2");
        assert_eq!(open(&k, &id(1), &s).unwrap(), b"hunter2");
        assert!(!s.ciphertext.windows(7).any(|w| w == b"hunter2"));
        let again = seal(&k, &id(1), b"hunter2");
        assert_ne!(
            again.ciphertext, s.ciphertext,
            "fresh data key and nonce every time"
        );
        assert_ne!(again.wrapped_key[..NONCE_LEN], s.wrapped_key[..NONCE_LEN]);
        let k2 = Kek::from_master(&MasterKey::from_bytes([4u8; 32]));
        let moved = rewrap(&k, &k2, &id(1), &s).unwrap();
        assert_eq!(moved.ciphertext, s.ciphertext);
        assert_eq!(open(&k2, &id(1), &moved).unwrap(), b"hunter2");
        assert!(matches!(
            open(&k, &id(1), &moved),
            Err(EnvelopeError::WrongKek { .. })
        ));
        assert!(!format!("{k:?}").contains("3, 3"));
    }

    #[test]
    fn ciphertexts_do_not_open_in_another_row() {
        let k = kek();
        let s = seal(&k, &id(1), b"v1");
        assert_eq!(open(&k, &id(2), &s), Err(EnvelopeError::Corrupt));
        let other = SecretId {
            app: "payments",
            ..id(1)
        };
        assert_eq!(open(&k, &other, &s), Err(EnvelopeError::Corrupt));
        let renamed = SecretId {
            name: "db/passwore",
            ..id(1)
        };
        assert_eq!(open(&k, &renamed, &s), Err(EnvelopeError::Corrupt));
        // Swapping the value ciphertexts of two versions fails.
        let s2 = seal(&k, &id(2), b"v2");
        let swapped = Sealed {
            ciphertext: s2.ciphertext.clone(),
            ..s.clone()
        };
        assert_eq!(open(&k, &id(1), &swapped), Err(EnvelopeError::Corrupt));
    }

    proptest! {
        /// Flipping any bit of the wrapped key, the nonce or the ciphertext
        /// (or of the identity bound as associated data) makes opening fail.
        #[test]
        fn any_flipped_byte_fails(value in proptest::collection::vec(any::<u8>(), 0..64), which in 0usize..3, at in 0usize..200, bit in 0u8..8) {
            let k = kek();
            let s = seal(&k, &id(7), &value);
            let mut t = s.clone();
            match which {
                0 => { let i = at % t.wrapped_key.len(); t.wrapped_key[i] ^= 1 << bit; }
                1 => { let i = at % t.ciphertext.len(); t.ciphertext[i] ^= 1 << bit; }
                _ => {
                    let v = id(7).version ^ (1 << (at % 62));
                    prop_assert_eq!(open(&k, &id(v), &s), Err(EnvelopeError::Corrupt));
                    return Ok(());
                }
            }
            prop_assert_eq!(open(&k, &id(7), &t), Err(EnvelopeError::Corrupt));
            prop_assert_eq!(open(&k, &id(7), &s).unwrap(), value);
        }
    }
}
