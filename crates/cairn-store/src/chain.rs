//! The tamper-evident audit chain.
//!
//! Every record carries `mac = HMAC-SHA256(key, prev_mac || canonical(record))`
//! where `canonical` is a fixed-order JSON array of every field but the mac.
//! The store also keeps a signed head (last seq and mac), so removing records
//! from the tail is noticed too. The key is derived from the master key and is
//! never stored in the database.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{AuditHead, AuditRecord};

/// The audit chain's HMAC key.
pub type AuditKey = [u8; 32];

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &AuditKey) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// The bytes a record's mac covers.
pub fn canonical(r: &AuditRecord) -> Vec<u8> {
    let fields = serde_json::json!([
        r.seq,
        r.revision,
        r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        r.actor,
        r.action,
        r.app,
        r.env,
        r.key,
        r.from_version,
        r.to_version,
        r.message,
        r.client_ip,
        r.user_agent,
        r.replica,
        cairn_model::canonical_json(&r.detail),
    ]);
    serde_json::to_vec(&fields).unwrap_or_default()
}

/// The mac of `r` following `prev_mac` (empty for the first record).
pub fn record_mac(key: &AuditKey, prev_mac: &str, r: &AuditRecord) -> String {
    let mut m = hmac(key);
    m.update(prev_mac.as_bytes());
    m.update(&canonical(r));
    hex::encode(m.finalize().into_bytes())
}

/// The signature of the chain's head.
pub fn head_signature(key: &AuditKey, seq: i64, mac: &str) -> String {
    let mut m = hmac(key);
    m.update(b"cairn-audit-head");
    m.update(&seq.to_be_bytes());
    m.update(mac.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// What `verify` found wrong, naming the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Tamper {
    /// The sequence number at which the chain first breaks.
    pub seq: i64,
    pub reason: String,
}

/// Walk the chain: records must be numbered 1, 2, 3 … in order, each mac must
/// match, and the head must be signed and point at the last record.
/// Returns how many records were verified.
pub fn verify(key: &AuditKey, records: &[AuditRecord], head: &AuditHead) -> Result<i64, Tamper> {
    let mut prev = String::new();
    for (i, r) in records.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if r.seq != expected_seq {
            let reason = if r.seq > expected_seq {
                format!("record {expected_seq} is missing (found {} next)", r.seq)
            } else {
                format!("record {} is out of order or duplicated", r.seq)
            };
            return Err(Tamper {
                seq: expected_seq,
                reason,
            });
        }
        if r.mac != record_mac(key, &prev, r) {
            return Err(Tamper {
                seq: r.seq,
                reason: "mac does not match: the record was edited, inserted or moved".into(),
            });
        }
        prev = r.mac.clone();
    }
    // Records past the head may have been appended since it was read; they
    // were verified above like every other record.
    if head.signature != head_signature(key, head.seq, &head.mac) {
        return Err(Tamper {
            seq: head.seq,
            reason: "the chain head's signature does not match".into(),
        });
    }
    let last = records.len() as i64;
    let at_head = usize::try_from(head.seq)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| records.get(i));
    match at_head {
        Some(r) if r.mac == head.mac => Ok(last),
        None if head.seq == 0 && head.mac.is_empty() => Ok(last),
        _ => Err(Tamper {
            seq: last + 1,
            reason: format!(
                "the chain head names record {} but the log ends at {last}: records were removed from the end",
                head.seq
            ),
        }),
    }
}
