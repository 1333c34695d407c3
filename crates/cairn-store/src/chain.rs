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
    verify_with(std::slice::from_ref(key), records, head)
}

/// [`verify`] with every key the chain may have been sealed with (the current
/// master key's and those of previous master keys, after a key change): each
/// record and the head must verify under one of them.
pub fn verify_with(
    keys: &[AuditKey],
    records: &[AuditRecord],
    head: &AuditHead,
) -> Result<i64, Tamper> {
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
        if !keys.iter().any(|key| r.mac == record_mac(key, &prev, r)) {
            return Err(Tamper {
                seq: r.seq,
                reason: "mac does not match: the record was edited, inserted or moved".into(),
            });
        }
        prev = r.mac.clone();
    }
    // Records past the head may have been appended since it was read; they
    // were verified above like every other record. A store that never wrote
    // a record has an unsigned, empty head.
    if records.is_empty() && *head == AuditHead::default() {
        return Ok(0);
    }
    if !keys
        .iter()
        .any(|key| head.signature == head_signature(key, head.seq, &head.mac))
    {
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
        _ => Err(Tamper {
            seq: last + 1,
            reason: format!(
                "the chain head names record {} but the log ends at {last}: records were removed from the end",
                head.seq
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    const KEY: AuditKey = [42u8; 32];

    fn record(seq: i64) -> AuditRecord {
        AuditRecord {
            seq,
            revision: Some(seq),
            at: Utc
                .timestamp_opt(1_700_000_000 + seq, 0)
                .single()
                .unwrap_or_default(),
            actor: format!("token:tok_{seq}"),
            action: "entry.set".into(),
            app: Some("billing".into()),
            env: Some("prod".into()),
            key: Some(format!("k{seq}")),
            from_version: Some(seq - 1),
            to_version: Some(seq),
            message: format!("change {seq}"),
            client_ip: Some("10.0.0.1".into()),
            user_agent: None,
            replica: Some("r1".into()),
            detail: serde_json::json!({"checksum": format!("sha256:{seq}")}),
            mac: String::new(),
        }
    }

    /// A sealed chain of `n` records and its head, as a store writes them.
    fn chain(n: i64) -> (Vec<AuditRecord>, AuditHead) {
        let mut prev = String::new();
        let mut out = Vec::new();
        for seq in 1..=n {
            let mut r = record(seq);
            r.mac = record_mac(&KEY, &prev, &r);
            prev = r.mac.clone();
            out.push(r);
        }
        let head = AuditHead {
            seq: n,
            mac: prev.clone(),
            signature: head_signature(&KEY, n, &prev),
        };
        (out, head)
    }

    /// Flip one byte of one field's text form (keeping the value parseable).
    fn edit(r: &mut AuditRecord, field: usize, byte: usize) {
        fn flip(s: &mut String, byte: usize) {
            let mut b = std::mem::take(s).into_bytes();
            if b.is_empty() {
                b.push(b'x');
            } else {
                let i = byte % b.len();
                b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            }
            *s = String::from_utf8_lossy(&b).into_owned();
        }
        match field % 12 {
            0 => r.seq += 1,
            1 => r.revision = r.revision.map(|v| v + 1),
            2 => r.at += chrono::Duration::microseconds(1),
            3 => flip(&mut r.actor, byte),
            4 => flip(&mut r.action, byte),
            5 => flip(r.key.get_or_insert_with(String::new), byte),
            6 => r.to_version = r.to_version.map(|v| v ^ 1),
            7 => flip(&mut r.message, byte),
            8 => flip(r.client_ip.get_or_insert_with(String::new), byte),
            9 => r.detail = serde_json::json!({"checksum": "sha256:forged"}),
            10 => flip(&mut r.mac, byte),
            _ => flip(r.env.get_or_insert_with(String::new), byte),
        }
    }

    #[test]
    fn a_chain_sealed_under_two_keys_verifies_with_both() {
        let (mut records, _) = chain(4);
        // Records 3 and 4 re-sealed under a new key, as after a master-key change.
        let new = [43u8; 32];
        let mut prev = records[1].mac.clone();
        for r in &mut records[2..] {
            r.mac = record_mac(&new, &prev, r);
            prev = r.mac.clone();
        }
        let head = AuditHead {
            seq: 4,
            mac: prev.clone(),
            signature: head_signature(&new, 4, &prev),
        };
        assert_eq!(verify_with(&[new, KEY], &records, &head), Ok(4));
        assert_eq!(
            verify(&new, &records, &head).unwrap_err().seq,
            1,
            "the old part needs the old key"
        );
        assert_eq!(verify(&KEY, &records, &head).unwrap_err().seq, 3);
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (records, head) = chain(20);
        assert_eq!(verify(&KEY, &records, &head), Ok(20));
        assert_eq!(verify(&KEY, &[], &AuditHead::default()), Ok(0));
        // Records appended after the head was read still verify.
        let (more, _) = chain(25);
        assert_eq!(verify(&KEY, &more, &head), Ok(25));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn a_single_edit_is_caught_at_its_record(n in 2i64..30, at in 0usize..30, field in 0usize..12, byte in 0usize..64) {
            let (mut records, head) = chain(n);
            let i = at % records.len();
            edit(&mut records[i], field, byte);
            let err = verify(&KEY, &records, &head).unwrap_err();
            prop_assert_eq!(err.seq, i as i64 + 1, "{}", err.reason);
        }

        #[test]
        fn a_deletion_is_caught(n in 2i64..30, at in 0usize..30) {
            let (mut records, head) = chain(n);
            let i = at % records.len();
            records.remove(i);
            let err = verify(&KEY, &records, &head).unwrap_err();
            prop_assert!(err.seq <= i as i64 + 1 || i == records.len(), "{:?}", err);
        }

        #[test]
        fn an_insertion_is_caught(n in 1i64..30, at in 0usize..31, forged_seq in 1i64..40) {
            let (mut records, head) = chain(n);
            let i = at % (records.len() + 1);
            let mut forged = record(forged_seq);
            forged.mac = record_mac(&[1u8; 32], "", &forged);
            records.insert(i, forged);
            prop_assert!(verify(&KEY, &records, &head).is_err());
        }

        #[test]
        fn a_reorder_is_caught(n in 2i64..30, a in 0usize..30, b in 0usize..30) {
            let (mut records, head) = chain(n);
            let (a, b) = (a % records.len(), b % records.len());
            prop_assume!(a != b);
            records.swap(a, b);
            let err = verify(&KEY, &records, &head).unwrap_err();
            prop_assert_eq!(err.seq, a.min(b) as i64 + 1);
        }

        #[test]
        fn a_truncation_is_caught(n in 1i64..30, keep in 0usize..30) {
            let (mut records, head) = chain(n);
            let keep = keep % records.len();
            records.truncate(keep);
            let err = verify(&KEY, &records, &head).unwrap_err();
            prop_assert_eq!(err.seq, keep as i64 + 1);
        }

        #[test]
        fn a_forged_head_is_caught(n in 1i64..30, keep in 0usize..30) {
            let (mut records, _) = chain(n);
            let keep = keep % records.len();
            records.truncate(keep);
            // Rewrite the head to match the truncated log without the key.
            let last = records.last().map(|r| r.mac.clone()).unwrap_or_default();
            let forged = AuditHead { seq: keep as i64, mac: last.clone(), signature: head_signature(&[9u8; 32], keep as i64, &last) };
            prop_assert!(verify(&KEY, &records, &forged).is_err());
        }
    }
}
